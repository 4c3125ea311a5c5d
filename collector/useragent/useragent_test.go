package useragent

import (
	"strconv"
	"strings"
	"testing"
)

// Real user agents of the browsers and devices shoptrail's shops see.
var browsers = []struct {
	ua                 string
	class, browser, os string
}{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "desktop", "Chrome", "Windows"},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "desktop", "Edge", "Windows"},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "desktop", "Firefox", "Windows"},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "desktop", "Safari", "macOS"},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", "desktop", "Chrome", "Linux"},
	{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "desktop", "Chrome", "ChromeOS"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "mobile", "Safari", "iOS"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "mobile", "Chrome", "iOS"},
	{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "tablet", "Safari", "iPadOS"},
	{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", "mobile", "Chrome", "Android"},
	{"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "tablet", "Chrome", "Android"},
	{"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "mobile", "Samsung Internet", "Android"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN", "mobile", "WeChat", "iOS"},
	{"Mozilla/5.0 (Linux; Android 12; V2134A Build/SP1A.210812.003; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/101.0.4951.74 Mobile Safari/537.36 XWEB/1220099 MMWEBSDK/20240404 MMWEBID/1234 MicroMessenger/8.0.49.2600(0x2800313D) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64", "mobile", "WeChat", "Android"},
	{"Mozilla/5.0 (Linux; U; Android 10; zh-CN; V1990A Build/QP1A.190711.020) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36", "mobile", "UC Browser", "Android"},
	{"Mozilla/5.0 (Linux; U; Android 11; zh-cn; PEGM00 Build/RKQ1.200903.002) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/90.0.4430.61 Mobile Safari/537.36 Quark/6.2.5.246", "mobile", "Quark", "Android"},
	{"Mozilla/5.0 (Linux; Android 10; HarmonyOS; ELS-AN00; HMSCore 6.13.0.302) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.88 HuaweiBrowser/15.0.4.312 Mobile Safari/537.36", "mobile", "Huawei Browser", "HarmonyOS"},
	{"Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.25 Safari/537.36 Core/1.70.3877.400 QQBrowser/10.8.4506.400", "desktop", "QQ Browser", "Windows"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 baiduboxapp/13.40.0.11 (Baidu; P2 16.6)", "mobile", "Baidu", "iOS"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "mobile", "iOS WebView", "iOS"},
	{"Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", "desktop", "Internet Explorer", "Windows"},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0", "desktop", "Opera", "Windows"},
}

func TestParse(t *testing.T) {
	for _, c := range browsers {
		got := Parse(c.ua)
		if got.Class != c.class || got.Browser != c.browser || got.OS != c.os {
			t.Errorf("Parse(%q)\n = %s/%s/%s, want %s/%s/%s", c.ua, got.Class, got.Browser, got.OS, c.class, c.browser, c.os)
		}
	}
}

// TestBrowsersAreNotBots guards against false positives of the list: no
// real browser of the table is a bot.
func TestBrowsersAreNotBots(t *testing.T) {
	c := NewClassifier(0)
	for _, b := range browsers {
		if e := c.Classify([]byte(b.ua)); e.Bot {
			t.Errorf("%q classified as a bot: %s", b.ua, e.BotReason)
		}
	}
}

// TestCrawlerInstances checks every example user agent the list ships
// (several thousand) is recognized, through the literal prefilter.
func TestCrawlerInstances(t *testing.T) {
	loadCrawlers()
	n := 0
	for _, c := range crawlerList {
		for _, ua := range c.Instances {
			n++
			if _, ok := Bot(ua); !ok {
				t.Errorf("instance of %q not recognized: %q", c.Pattern, ua)
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d crawler instances in the list", n)
	}
}

func TestBotHeuristics(t *testing.T) {
	f := func(ua, wantReason string) {
		t.Helper()
		reason, ok := Bot(ua)
		if !ok || !strings.HasPrefix(reason, wantReason) {
			t.Errorf("Bot(%q) = %q %v, want reason %q", ua, reason, ok, wantReason)
		}
	}
	f("", "empty_user_agent")
	f("   ", "empty_user_agent")
	f("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "headless")
	f("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler-user-agents:Googlebot")
	f("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", "crawler-user-agents:")
	f("curl/8.5.0", "crawler-user-agents:")
	f("python-requests/2.31.0", "crawler-user-agents:")
}

func TestClassifierCacheBounded(t *testing.T) {
	c := NewClassifier(10)
	for i := 0; i < 25; i++ {
		ua := []byte("Mozilla/5.0 (Windows NT 10.0) Chrome/1" + strings.Repeat("1", i))
		e := c.Classify(ua)
		if e.UA != string(ua) || e.Class != ClassDesktop {
			t.Fatalf("entry %+v", e)
		}
		if e2 := c.Classify(ua); e2 != e {
			t.Fatalf("second lookup of %q was not cached", ua)
		}
	}
	if n := len(c.cache); n > 10 {
		t.Errorf("cache holds %d entries, limit 10", n)
	}
}

func FuzzClassify(f *testing.F) {
	for _, b := range browsers {
		f.Add(b.ua)
	}
	f.Add("Googlebot/2.1")
	f.Add("\xff\xfe")
	c := NewClassifier(100)
	f.Fuzz(func(t *testing.T, ua string) {
		e := c.Classify([]byte(ua))
		if e.Class == "" {
			t.Errorf("no class for %q", ua)
		}
	})
}

func BenchmarkClassifyMiss(b *testing.B) {
	loadCrawlers()
	ua := browsers[0].ua
	b.ReportAllocs()
	for b.Loop() {
		Bot(ua)
		Parse(ua)
	}
}

func BenchmarkClassifyHit(b *testing.B) {
	c := NewClassifier(0)
	ua := []byte(browsers[0].ua)
	c.Classify(ua)
	b.ReportAllocs()
	for b.Loop() {
		c.Classify(ua)
	}
}

// TestClassifierBounded: user agents of any length are cut before they
// are parsed or cached, and the cache stays within its bytes whatever the
// traffic.
func TestClassifierBounded(t *testing.T) {
	c := NewClassifier(0)
	long := strings.Repeat("Mozilla/5.0 (Windows NT 10.0) ", 4000) // 120 KB
	for i := 0; i < 20000; i++ {
		e := c.Classify([]byte(strconv.Itoa(i) + long))
		if len(e.UA) > MaxLen {
			t.Fatalf("entry holds a %d-byte user agent", len(e.UA))
		}
		if b := c.Bytes(); b > 4<<20 {
			t.Fatalf("cache holds %d bytes after %d user agents, bound 4 MiB", b, i+1)
		}
	}
	if e := c.Classify([]byte(long)); e.OS != "Windows" {
		t.Errorf("a cut user agent is still classified: %+v", e.Info)
	}
}
