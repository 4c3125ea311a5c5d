package safehttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAllowed(t *testing.T) {
	f := func(addr string, loopback, want bool) {
		t.Helper()
		if got := Allowed(netip.MustParseAddr(addr), loopback); got != want {
			t.Errorf("Allowed(%s, loopback=%v) = %v, want %v", addr, loopback, got, want)
		}
	}
	// Public addresses pass.
	f("93.184.215.14", false, true)
	f("2606:4700::6810:85e5", false, true)
	// Loopback only with the option, also IPv4-mapped.
	f("127.0.0.1", false, false)
	f("127.0.0.1", true, true)
	f("::1", false, false)
	f("::1", true, true)
	f("::ffff:127.0.0.1", false, false)
	// Private, link-local (cloud metadata), CGNAT, multicast, unspecified.
	f("10.1.2.3", true, false)
	f("172.16.0.1", true, false)
	f("192.168.1.1", true, false)
	f("::ffff:192.168.1.1", true, false)
	f("169.254.169.254", true, false)
	f("fe80::1", true, false)
	f("fd00:ec2::254", true, false)
	f("100.64.0.1", true, false)
	f("224.0.0.1", true, false)
	f("0.0.0.0", true, false)
	f("::", true, false)
	f("255.255.255.255", true, false)
	// NAT64 and 6to4 carrying an internal IPv4.
	f("64:ff9b::a9fe:a9fe", true, false)
	f("2002:a9fe:a9fe::1", true, false)
}

func receiver(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/landed", http.StatusFound)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 1<<20)))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/slow-body":
			// The status and a first part at once, the rest never.
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(c *Client, u string) (*Answer, error) {
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	return c.Do(context.Background(), req)
}

func TestLoopbackOnlyByOption(t *testing.T) {
	srv := receiver(t)
	// Refused by default, by IP and by a name resolving to loopback (the
	// dial-time check sees the resolved address).
	strict := New(Options{})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for _, u := range []string{srv.URL + "/", "http://localhost:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		if _, err := get(strict, u); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: err %v, want ErrForbiddenAddress", u, err)
		}
	}
	// Allowed with the option.
	loose := New(Options{AllowLoopback: true})
	a, err := get(loose, srv.URL+"/")
	if err != nil || a.Status != 200 || string(a.Body) != "ok" {
		t.Fatalf("loopback allowed: %v %+v", err, a)
	}
	// Other internal addresses stay refused with the option.
	if _, err := get(loose, "http://169.254.169.254/latest/meta-data/"); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("metadata address: %v", err)
	}
	if _, err := get(loose, "http://10.0.0.1:80/"); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("private address: %v", err)
	}
}

func TestNoRedirectsCapTimeoutScheme(t *testing.T) {
	srv := receiver(t)
	c := New(Options{AllowLoopback: true, MaxAnswer: 1000, Timeout: 300 * time.Millisecond})
	a, err := get(c, srv.URL+"/redirect")
	if err != nil || a.Status != http.StatusFound {
		t.Errorf("redirect: %v %+v, want the 302 itself", err, a)
	}
	a, err = get(c, srv.URL+"/big")
	if err != nil || len(a.Body) != 1000 {
		t.Errorf("big answer: %v, %d bytes kept, want 1000", err, len(a.Body))
	}
	start := time.Now()
	if _, err := get(c, srv.URL+"/slow"); err == nil {
		t.Error("slow answer did not time out")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The time limit holds while the answer's body is read too.
	start = time.Now()
	if _, err := get(c, srv.URL+"/slow-body"); err == nil {
		t.Error("a body that never ends did not time out")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("body timeout took %v", d)
	}
	for _, u := range []string{"file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/"} {
		if _, err := get(c, u); !errors.Is(err, ErrScheme) {
			t.Errorf("%s: %v, want ErrScheme", u, err)
		}
	}
}

func TestErrorsDoNotQuoteURL(t *testing.T) {
	c := New(Options{})
	_, err := get(c, "http://127.0.0.1:1/hook?access_token=SECRET-TOKEN")
	if err == nil || strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Errorf("error %v quotes the URL", err)
	}
}
