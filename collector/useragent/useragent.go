// Package useragent turns a User-Agent header into a device class, browser
// and operating system, and tells crawlers apart.
//
// The parser is our own, small and table-driven, rather than a module:
// github.com/mssola/useragent does not know the in-app browsers of the
// market shoptrail serves (WeChat, QQ, UC, Quark, Baidu, Douyin, DingTalk,
// Alipay, Huawei, MIUI) nor HarmonyOS, and allocates on every call;
// github.com/medama-io/go-useragent cannot be fetched here. We need three
// coarse fields, and tables of real user agents test them
// (useragent_test.go). Crawlers are recognized by the maintained, MIT
// licensed crawler-user-agents list (crawler-user-agents.json, version
// 1.60.0 of the npm package; replace the file to update it) plus
// heuristics for headless and automated browsers.
//
// Classifier caches results, so the cost is paid once per distinct user
// agent.
package useragent

import "strings"

// Device classes.
const (
	ClassDesktop = "desktop"
	ClassMobile  = "mobile"
	ClassTablet  = "tablet"
	ClassBot     = "bot"
	// ClassServer is an event sent by a server-side library on behalf of a
	// visitor: the user agent is the library's, not the visitor's.
	ClassServer = "server"
	ClassOther  = "other"
)

// Info is what a user agent says about the device.
type Info struct {
	Class   string
	Browser string
	OS      string
	// Bot is set for crawlers and automated browsers; BotReason says why
	// ("crawler-user-agents:<pattern>", "headless", "empty_user_agent").
	Bot       bool
	BotReason string
}

type rule struct{ token, name string }

// Operating systems, the first matching token wins: order matters
// (Windows Phone before Windows, HarmonyOS before Android, iPad before Mac).
var osRules = []rule{
	{"Windows Phone", "Windows Phone"},
	{"Windows", "Windows"},
	{"HarmonyOS", "HarmonyOS"},
	{"OpenHarmony", "HarmonyOS"},
	{"Android", "Android"},
	{"iPhone", "iOS"},
	{"iPod", "iOS"},
	{"iPad", "iPadOS"},
	{"CrOS", "ChromeOS"},
	{"Mac OS X", "macOS"},
	{"Macintosh", "macOS"},
	{"Tizen", "Tizen"},
	{"KaiOS", "KaiOS"},
	{"Ubuntu", "Linux"},
	{"Linux", "Linux"},
	{"FreeBSD", "FreeBSD"},
	{"OpenBSD", "OpenBSD"},
}

// Browsers, the first matching token wins: in-app and vendor browsers
// before the engines they wrap (they all claim Chrome or Safari too).
var browserRules = []rule{
	{"wxwork/", "WeCom"},
	{"MicroMessenger/", "WeChat"},
	{"DingTalk", "DingTalk"},
	{"AlipayClient", "Alipay"},
	{"aweme", "Douyin"},
	{"BytedanceWebview", "Douyin"},
	{"Weibo", "Weibo"},
	{"baiduboxapp", "Baidu"},
	{"BIDUBrowser", "Baidu"},
	{"baidubrowser", "Baidu"},
	{"Quark/", "Quark"},
	{"UCBrowser", "UC Browser"},
	{"UCWEB", "UC Browser"},
	{"MQQBrowser", "QQ Browser"},
	{"QQBrowser", "QQ Browser"},
	{" QQ/", "QQ"},
	{"HuaweiBrowser", "Huawei Browser"},
	{"HeyTapBrowser", "HeyTap Browser"},
	{"VivoBrowser", "vivo Browser"},
	{"MiuiBrowser", "MIUI Browser"},
	{"SamsungBrowser", "Samsung Internet"},
	{"YaBrowser", "Yandex Browser"},
	{"Edg/", "Edge"},
	{"EdgA/", "Edge"},
	{"EdgiOS/", "Edge"},
	{"Edge/", "Edge"},
	{"OPR/", "Opera"},
	{"OPiOS/", "Opera"},
	{"Opera", "Opera"},
	{"Vivaldi", "Vivaldi"},
	{"FxiOS/", "Firefox"},
	{"Firefox/", "Firefox"},
	{"CriOS/", "Chrome"},
	{"Chromium/", "Chromium"},
	{"Chrome/", "Chrome"},
	{"MSIE ", "Internet Explorer"},
	{"Trident/", "Internet Explorer"},
	{"Version/", "Safari"}, // Safari says Version/x Safari/y; checked below
}

// Parse reads the device class, browser and operating system of ua. It
// does not look for crawlers (Classifier does); an empty ua gives
// ClassOther.
func Parse(ua string) Info {
	var in Info
	for _, r := range osRules {
		if strings.Contains(ua, r.token) {
			in.OS = r.name
			break
		}
	}
	for _, r := range browserRules {
		if strings.Contains(ua, r.token) {
			in.Browser = r.name
			break
		}
	}
	if in.Browser == "Safari" && !strings.Contains(ua, "Safari/") {
		in.Browser = ""
	}
	if in.Browser == "" && (in.OS == "iOS" || in.OS == "iPadOS") && strings.Contains(ua, "AppleWebKit") {
		in.Browser = "iOS WebView"
	}
	in.Class = deviceClass(ua, in.OS)
	return in
}

func deviceClass(ua, os string) string {
	has := func(s string) bool { return strings.Contains(ua, s) }
	switch {
	case ua == "":
		return ClassOther
	case has("iPad"), has("Tablet"), has("Kindle"), has("Silk/"), has("PlayBook"):
		return ClassTablet
	case has("SmartTV"), has("SMART-TV"), has("PlayStation"), has("Xbox"), has("Nintendo"), has("CrKey"):
		return ClassOther
	case os == "Android" || os == "HarmonyOS":
		if has("Mobile") || has("Phone") {
			return ClassMobile
		}
		return ClassTablet
	case os == "iOS", os == "Windows Phone", os == "KaiOS", has("Mobile"), has("Opera Mini"), has("BlackBerry"):
		return ClassMobile
	case os == "Windows", os == "macOS", os == "Linux", os == "ChromeOS", os == "FreeBSD", os == "OpenBSD":
		return ClassDesktop
	}
	return ClassOther
}
