package session

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/shoptrail/shoptrail"
)

func TestChannel(t *testing.T) {
	f := func(source, medium, campaign, want string) {
		t.Helper()
		if got := Channel(source, medium, campaign); got != want {
			t.Errorf("Channel(%q, %q, %q) = %q, want %q", source, medium, campaign, got, want)
		}
	}
	// 1 Direct, case-insensitive; near miss: another medium.
	f("(direct)", "(none)", "", ChannelDirect)
	f("(DIRECT)", "(Not Set)", "", ChannelDirect)
	f("(direct)", "referral", "", ChannelReferral)
	// 2 Cross-network by campaign name; near miss without the hyphen.
	f("google", "cpc", "PMax Cross-Network 2025", ChannelCrossNetwork)
	f("google", "cpc", "crossnetwork", ChannelPaidSearch)
	// 3 Paid Shopping: shopping source or shop campaign, with a paid medium.
	f("taobao", "cpc", "", ChannelPaidShopping)
	f("1688", "paid", "", ChannelPaidShopping)
	f("newsletter", "cpc", "summer-shop", ChannelPaidShopping)
	f("google", "cpc", "e-shopping week", ChannelPaidShopping) // before Paid Search
	f("newsletter", "cpc", "workshop", ChannelPaidOther)       // "kshop" is no shop
	f("taobao", "referral", "", ChannelOrganicShopping)
	// 4 Paid Search: search source and paid medium.
	f("baidu", "cpc", "", ChannelPaidSearch)
	f("360", "ppc", "", ChannelPaidSearch)
	f("Sogou", "CPM", "", ChannelPaidSearch) // cpm matches .*cp.* before Display
	f("baidu", "organic", "", ChannelOrganicSearch)
	f("example.com", "cpc", "", ChannelPaidOther)
	// 5 Paid Social.
	f("wechat", "paid_social", "", ChannelPaidSocial)
	f("douyin", "retargeting", "", ChannelPaidSocial)
	f("douyin", "referral", "", ChannelOrganicSocial)
	// 6 Paid Video.
	f("bilibili", "cpc", "", ChannelPaidVideo)
	f("youtube", "cpv", "", ChannelPaidVideo)
	f("bilibili", "referral", "", ChannelOrganicVideo)
	// 7 Display.
	f("adnet", "banner", "", ChannelDisplay)
	f("adnet", "interstitial", "", ChannelDisplay)
	f("adnet", "expandable", "", ChannelDisplay)
	f("adnet", "display", "", ChannelDisplay)
	f("adnet", "banners", "", ChannelUnassigned)
	// 8 Paid Other: a paid medium without a categorized source.
	f("example.com", "paidsearch", "", ChannelPaidOther)
	f("partner", "retargeting", "", ChannelPaidOther)
	f("partner", "pay", "", ChannelUnassigned)
	// 9 Organic Shopping: shopping source or shop campaign.
	f("jd", "referral", "", ChannelOrganicShopping)
	f("newsletter", "email", "black-friday shop", ChannelOrganicShopping) // before Email
	f("newsletter", "email", "bookshopping", ChannelOrganicShopping)
	f("partner", "referral", "workshop", ChannelReferral)
	// 10 Organic Social: social source or social medium.
	f("zhihu", "referral", "", ChannelOrganicSocial)
	f("forum", "sm", "", ChannelOrganicSocial)
	f("forum", "social network", "", ChannelOrganicSocial)
	f("forum", "smm", "", ChannelUnassigned)
	// 11 Organic Video: video source or medium containing video.
	f("youku", "referral", "", ChannelOrganicVideo)
	f("tv", "video-ads", "", ChannelOrganicVideo)
	f("tv", "vid", "", ChannelUnassigned)
	// 12 Organic Search: search source or medium organic.
	f("sogou", "referral", "", ChannelOrganicSearch)
	f("ask.example", "organic", "", ChannelOrganicSearch)
	f("example.com", "organic-social", "", ChannelUnassigned)
	// 13 Referral.
	f("example.com", "referral", "", ChannelReferral)
	f("partner", "app", "", ChannelReferral)
	f("partner", "link", "", ChannelReferral)
	f("partner", "links", "", ChannelUnassigned)
	// 14 Email, by source or medium.
	f("newsletter", "email", "", ChannelEmail)
	f("e_mail", "blast", "", ChannelEmail)
	f("crm", "e mail", "", ChannelEmail)
	f("newsletter", "emails", "", ChannelUnassigned)
	// 15 Affiliates.
	f("partner", "affiliate", "", ChannelAffiliates)
	f("partner", "affiliates", "", ChannelUnassigned)
	// 16 Audio.
	f("podcast", "audio", "", ChannelAudio)
	f("podcast", "audiobook", "", ChannelUnassigned)
	// 17 SMS, by source or medium.
	f("sms", "text", "", ChannelSMS)
	f("carrier", "SMS", "", ChannelSMS)
	f("carrier", "mms", "", ChannelUnassigned)
	// 18 Mobile Push Notifications.
	f("app", "web-push", "", ChannelMobilePush)
	f("app", "mobile-alert", "", ChannelMobilePush)
	f("app", "in-app notification", "", ChannelMobilePush)
	f("firebase", "x", "", ChannelMobilePush)
	f("app", "pushy", "", ChannelUnassigned)
	// Unassigned.
	f("foo", "bar", "", ChannelUnassigned)
	f("", "", "", ChannelUnassigned)
}

// TestSourceCategories checks the platforms this market adds to GA4's list.
func TestSourceCategories(t *testing.T) {
	for cat, names := range map[Category][]string{
		CategorySearch: {"baidu", "Baidu", "百度", "sogou", "360", "so.com", "shenma", "sm.cn", "cn.bing.com", "bing",
			"google", "quark"},
		CategorySocial: {"wechat", "weixin", "weibo", "douyin", "kuaishou", "zhihu", "xiaohongshu", "xhs", "小红书",
			"toutiao", "facebook", "t.co"},
		CategoryVideo: {"bilibili", "youku", "iqiyi", "youtube", "xigua"},
		CategoryShopping: {"taobao", "tmall", "jd", "1688", "pinduoduo", "pdd", "alibaba", "made-in-china",
			"globalsources", "hc360", "ic.net.cn", "hqew", "octopart", "digikey", "amazon"},
		CategoryNone: {"example.com", "newsletter", ""},
	} {
		for _, n := range names {
			if got := SourceCategory(n); got != cat {
				t.Errorf("SourceCategory(%q) = %v, want %v", n, got, cat)
			}
		}
	}
}

func TestAttribute(t *testing.T) {
	own := []string{"example.cn", "*.shop-cdn.com"}
	const page = "https://www.example.com/p/123?utm_source=x"
	f := func(name, pageURL, referrer string, c shoptrail.Campaign, want Source, channel string) {
		t.Helper()
		got := Attribute(pageURL, referrer, c, own)
		if got != want {
			t.Errorf("%s: Attribute(%q, %q, %+v) =\n  %+v, want\n  %+v", name, pageURL, referrer, c, got, want)
		}
		if ch := Channel(got.Source, got.Medium, got.Campaign); ch != channel {
			t.Errorf("%s: channel %q, want %q", name, ch, channel)
		}
	}
	none := shoptrail.Campaign{}
	// utm parameters win over click id and referrer; source/medium lower-cased.
	f("utm wins", page, "https://www.baidu.com/", shoptrail.Campaign{Source: "WeChat", Medium: "CPC", Name: "Spring Sale", ClickIDKind: "gclid"},
		Source{Source: "wechat", Medium: "cpc", Campaign: "Spring Sale", ClickIDKind: "gclid"}, ChannelPaidSocial)
	f("utm without medium", page, "", shoptrail.Campaign{Source: "newsletter", Name: "n1"},
		Source{Source: "newsletter", Medium: NotSet, Campaign: "n1"}, ChannelUnassigned)
	f("utm without medium, click id", page, "", shoptrail.Campaign{Source: "baidu", ClickIDKind: "bd_vid"},
		Source{Source: "baidu", Medium: "cpc", ClickIDKind: "bd_vid"}, ChannelPaidSearch)
	f("utm without source", page, "", shoptrail.Campaign{Medium: "email", Term: "t", Content: "c"},
		Source{Source: NotSet, Medium: "email", Term: "t", Content: "c"}, ChannelEmail)
	// Click ids mean paid.
	f("gclid", page, "https://www.google.com/", shoptrail.Campaign{ClickIDKind: "gclid"},
		Source{Source: "google", Medium: "cpc", ClickIDKind: "gclid"}, ChannelPaidSearch)
	f("wbraid no referrer", page, "", shoptrail.Campaign{ClickIDKind: "WBRAID"},
		Source{Source: "google", Medium: "cpc", ClickIDKind: "wbraid"}, ChannelPaidSearch)
	f("gclid from youtube", page, "https://m.youtube.com/watch?v=1", shoptrail.Campaign{ClickIDKind: "gclid"},
		Source{Source: "youtube", Medium: "cpc", ClickIDKind: "gclid"}, ChannelPaidVideo)
	f("dclid", page, "https://news.example.org/", shoptrail.Campaign{ClickIDKind: "dclid"},
		Source{Source: "google", Medium: "display", ClickIDKind: "dclid"}, ChannelDisplay)
	f("msclkid", page, "https://cn.bing.com/", shoptrail.Campaign{ClickIDKind: "msclkid"},
		Source{Source: "bing", Medium: "cpc", ClickIDKind: "msclkid"}, ChannelPaidSearch)
	f("bd_vid", page, "https://m.baidu.com/from=1/s?word=x", shoptrail.Campaign{ClickIDKind: "bd_vid"},
		Source{Source: "baidu", Medium: "cpc", ClickIDKind: "bd_vid"}, ChannelPaidSearch)
	f("qhclickid", page, "", shoptrail.Campaign{ClickIDKind: "qhclickid"},
		Source{Source: "360", Medium: "cpc", ClickIDKind: "qhclickid"}, ChannelPaidSearch)
	f("uctrackid", page, "", shoptrail.Campaign{ClickIDKind: "uctrackid"},
		Source{Source: "shenma", Medium: "cpc", ClickIDKind: "uctrackid"}, ChannelPaidSearch)
	f("gdt_vid", page, "", shoptrail.Campaign{ClickIDKind: "gdt_vid"},
		Source{Source: "tencent", Medium: "cpc", ClickIDKind: "gdt_vid"}, ChannelPaidSocial)
	f("fbclid is not paid", page, "https://l.facebook.com/", shoptrail.Campaign{ClickIDKind: "fbclid"},
		Source{Source: "facebook", Medium: "referral", ClickIDKind: "fbclid"}, ChannelOrganicSocial)
	f("unknown click id", page, "", shoptrail.Campaign{ClickIDKind: "zzclid"},
		Source{Source: SourceDirect, Medium: MediumNone, ClickIDKind: "zzclid"}, ChannelDirect)
	// Search engines -> organic.
	for _, ref := range []struct{ url, source string }{
		{"https://www.baidu.com/link?url=abc", "baidu"},
		{"https://m.baidu.com/", "baidu"},
		{"HTTPS://WWW.BAIDU.COM:443/s?wd=x", "baidu"},
		{"https://www.sogou.com/web?query=x", "sogou"},
		{"https://m.sogou.com/", "sogou"},
		{"https://www.so.com/s?q=x", "360"},
		{"https://m.so.com/", "360"},
		{"https://m.sm.cn/s?q=x", "shenma"},
		{"https://yz.m.sm.cn/", "shenma"},
		{"https://cn.bing.com/search?q=x", "bing"},
		{"https://www.bing.com/", "bing"},
		{"https://www.google.com/", "google"},
		{"https://www.google.com.hk/", "google"},
		{"https://google.de/", "google"},
		{"https://www.google.co.uk/", "google"},
		{"android-app://com.google.android.googlequicksearchbox/https/www.google.com", "google"},
		{"https://duckduckgo.com/", "duckduckgo"},
		{"https://yandex.ru/search", "yandex"},
		{"https://so.toutiao.com/search?keyword=x", "toutiao search"},
	} {
		f("search "+ref.url, page, ref.url, none, Source{Source: ref.source, Medium: MediumOrganic}, ChannelOrganicSearch)
	}
	// Known platforms -> their name/referral, channel by category.
	for _, ref := range []struct{ url, source, channel string }{
		{"https://mp.weixin.qq.com/s/abc", "wechat", ChannelOrganicSocial},
		{"https://weibo.com/u/1", "weibo", ChannelOrganicSocial},
		{"https://m.weibo.cn/", "weibo", ChannelOrganicSocial},
		{"https://www.douyin.com/video/1", "douyin", ChannelOrganicSocial},
		{"https://www.kuaishou.com/", "kuaishou", ChannelOrganicSocial},
		{"https://www.zhihu.com/question/1", "zhihu", ChannelOrganicSocial},
		{"https://zhuanlan.zhihu.com/p/1", "zhihu", ChannelOrganicSocial},
		{"https://www.xiaohongshu.com/explore/1", "xiaohongshu", ChannelOrganicSocial},
		{"https://tieba.baidu.com/p/1", "tieba", ChannelOrganicSocial},
		{"https://t.co/abc", "twitter", ChannelOrganicSocial},
		{"https://www.bilibili.com/video/BV1", "bilibili", ChannelOrganicVideo},
		{"https://b23.tv/abc", "bilibili", ChannelOrganicVideo},
		{"https://v.qq.com/x/1", "tencent video", ChannelOrganicVideo},
		{"https://item.taobao.com/item.htm?id=1", "taobao", ChannelOrganicShopping},
		{"https://detail.tmall.com/item.htm?id=1", "tmall", ChannelOrganicShopping},
		{"https://item.jd.com/1.html", "jd", ChannelOrganicShopping},
		{"https://detail.1688.com/offer/1.html", "1688", ChannelOrganicShopping},
		{"https://mobile.yangkeduo.com/", "pinduoduo", ChannelOrganicShopping},
		{"https://www.made-in-china.com/", "made-in-china", ChannelOrganicShopping},
		{"https://www.alibaba.com/product-detail/x.html", "alibaba", ChannelOrganicShopping},
		{"https://www.globalsources.com/", "globalsources", ChannelOrganicShopping},
		{"https://b2b.hc360.com/", "hc360", ChannelOrganicShopping},
		{"https://www.ic.net.cn/search/x.html", "ic.net.cn", ChannelOrganicShopping},
		{"https://octopart.com/part", "octopart", ChannelOrganicShopping},
		{"https://www.digikey.cn/", "digikey", ChannelOrganicShopping},
		{"https://www.amazon.co.uk/", "amazon", ChannelOrganicShopping},
	} {
		f("platform "+ref.url, page, ref.url, none, Source{Source: ref.source, Medium: MediumReferral}, ref.channel)
	}
	// Unknown hosts are their own source, without www.
	f("unknown host", page, "https://www.partner.org/blog/x", none, Source{Source: "partner.org", Medium: "referral"}, ChannelReferral)
	f("webmail is a referral", page, "https://mail.google.com/mail/u/0/", none, Source{Source: "mail.google.com", Medium: "referral"}, ChannelReferral)
	f("not google", page, "https://google.evilcorp.io/", none, Source{Source: "google.evilcorp.io", Medium: "referral"}, ChannelReferral)
	// Direct: nothing, the site's own domains, payment gateways.
	f("no referrer", page, "", none, Direct, ChannelDirect)
	f("about:blank", page, "about:blank", none, Direct, ChannelDirect)
	f("same host", page, "https://www.example.com/cart", none, Direct, ChannelDirect)
	f("subdomain of page host", page, "https://m.example.com/", none, Direct, ChannelDirect)
	f("own domain", page, "https://www.example.cn/", none, Direct, ChannelDirect)
	f("own domain apex", page, "https://example.cn/", none, Direct, ChannelDirect)
	f("own wildcard domain", page, "https://img.shop-cdn.com/", none, Direct, ChannelDirect)
	f("lookalike is not own", page, "https://notexample.cn/", none, Source{Source: "notexample.cn", Medium: "referral"}, ChannelReferral)
	f("alipay return", page, "https://mclient.alipay.com/h5/pay", none, Direct, ChannelDirect)
	f("wechat pay return", page, "https://pay.weixin.qq.com/x", none, Direct, ChannelDirect)
	f("paypal return", page, "https://www.paypal.com/checkoutnow", none, Direct, ChannelDirect)
}

func TestHostOf(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
	f("https://WWW.Example.COM:8443/a?b#c", "www.example.com")
	f("http://user:pw@example.com/", "example.com")
	f("https://example.com.", "example.com")
	f("https://example.com?q=1", "example.com")
	f("//cdn.example.com/x", "cdn.example.com")
	f("https://[2001:db8::1]:443/", "2001:db8::1")
	f("ftp://example.com/", "")
	f("example.com/path", "")
	f("", "")
}

// TestRulesFingerprint fails when the attribution data or the channel rules
// change without a new RulesVersion: sessions classified by different rules
// must be told apart.
func TestRulesFingerprint(t *testing.T) {
	fingerprints := map[uint16]string{
		1: "1acf64e9bccc7ba7374eb1edbfe4c03f",
	}
	h := sha256.New()
	for _, data := range []string{sourcesCSV, referrersCSV, clickIDsCSV} {
		fmt.Fprintf(h, "%d:%s\n", len(data), data)
	}
	for _, r := range channelRules {
		fmt.Fprintf(h, "%s:", r.channel)
		for _, clause := range r.all {
			for _, c := range clause {
				re := ""
				if c.re != nil {
					re = c.re.String()
				}
				fmt.Fprintf(h, "%d/%d/%s/%s/%d|", c.field, c.op, strings.Join(c.vals, ","), re, c.cat)
			}
			fmt.Fprint(h, ";")
		}
		fmt.Fprintln(h)
	}
	got := hex.EncodeToString(h.Sum(nil)[:16])
	if want := fingerprints[RulesVersion]; got != want {
		t.Fatalf("rules fingerprint %s, recorded for version %d: %q\n"+
			"the attribution data or channel rules changed: bump RulesVersion and record the new fingerprint", got, RulesVersion, want)
	}
}
