// Package safehttp is the HTTP client alerts leave by: the destinations'
// URLs come from a rules file, so a careless or hostile URL must not reach
// the alerter's own network (SSRF). The check runs at dial time on the
// address actually dialled (net.Dialer.Control), after DNS resolution, so
// a name that resolves to an internal address (DNS rebinding) is refused
// too. Redirects are not followed, answers are read up to a cap within a
// deadline, only http and https are spoken and no proxy from the
// environment is used.
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Options configure a Client. The zero value is the safe default.
type Options struct {
	// AllowLoopback lets requests reach 127.0.0.0/8 and ::1: tests and a
	// receiver on the same host. Everything else internal stays refused.
	AllowLoopback bool
	// Timeout bounds one request from dial to the last byte of the answer.
	// The default is 10s.
	Timeout time.Duration
	// MaxAnswer is the number of answer bytes kept; the rest is discarded
	// unread. The default is 64 KiB.
	MaxAnswer int64
	// IdlePerHost is how many idle connections are kept per host for
	// reuse; the default is 16. Fewer than the requests in flight to a
	// host, and connections are closed and dialled again all the time.
	IdlePerHost int
}

// Errors.
var (
	// ErrForbiddenAddress: the destination resolved to an internal address.
	ErrForbiddenAddress = errors.New("destination address is not allowed")
	// ErrScheme: the URL is not http or https.
	ErrScheme = errors.New("only http and https destinations are allowed")
)

// Client sends requests safely. It is safe for concurrent use.
type Client struct {
	tr   *http.Transport
	opts Options
}

// Answer is what came back.
type Answer struct {
	Status int
	Header http.Header
	// Body is at most Options.MaxAnswer bytes.
	Body []byte
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxAnswer <= 0 {
		opts.MaxAnswer = 64 << 10
	}
	if opts.IdlePerHost <= 0 {
		opts.IdlePerHost = 16
	}
	d := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			return check(network, address, opts.AllowLoopback)
		}}
	tr := &http.Transport{
		Proxy:                 nil, // never a proxy from the environment: it would dial for us
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, opts.IdlePerHost),
		MaxIdleConnsPerHost:   opts.IdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
	}
	return &Client{opts: opts, tr: tr}
}

// Do sends req and reads the answer (capped) within the timeout, from dial
// to the answer's last byte. A 3xx is the answer, not a new destination:
// the request goes to the transport itself, which follows no redirects
// (and spares http.Client's per-request copies of the headers for them).
// Errors never quote the URL: it may hold a robot's token.
func (c *Client) Do(ctx context.Context, req *http.Request) (*Answer, error) {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, ErrScheme
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	resp, err := c.tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, scrub(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxAnswer))
	if err != nil {
		return nil, fmt.Errorf("cannot read the answer: %w", scrub(err))
	}
	return &Answer{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// CloseIdle closes idle connections.
func (c *Client) CloseIdle() { c.tr.CloseIdleConnections() }

// scrub drops the URL from a *url.Error, keeping its cause.
func scrub(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			if errors.Is(inner, ErrForbiddenAddress) {
				return ErrForbiddenAddress
			}
			return fmt.Errorf("request failed: %w", inner)
		}
	}
	return err
}

// check refuses an address that is not a public unicast one.
func check(network, address string, allowLoopback bool) error {
	if network != "tcp4" && network != "tcp6" && network != "tcp" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, err)
	}
	if !Allowed(ap.Addr(), allowLoopback) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// Blocked ranges beyond what netip's predicates cover.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT (and some clouds' internal ranges)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds IPv4 (could be internal)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds IPv4
	netip.MustParsePrefix("2001::/32"),       // Teredo: embeds IPv4
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// Allowed tells whether an address may be dialled: public unicast only;
// loopback when allowLoopback. IPv4-mapped IPv6 addresses are judged as
// the IPv4 address they carry.
func Allowed(a netip.Addr, allowLoopback bool) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return allowLoopback
	}
	if !a.IsValid() || a.IsUnspecified() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
