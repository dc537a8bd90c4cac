package testenv

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP forwarder on 127.0.0.1 in front of one server, which a test can cut off, slow
// down and restore, as a network would: point the code under test at Addr instead of the
// server. It is closed when the test ends.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	delay time.Duration
	// conns are the open forwarded connections, both sides; held are those accepted while cut,
	// which hear nothing.
	conns map[net.Conn]struct{}
	held  map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy starts forwarding connections from a free port of 127.0.0.1 to target
// (host:port).
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testenv: proxy listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}, held: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	tb.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut makes the server unreachable the way a network partition does: open connections are
// closed, and new ones are accepted but hear nothing (no answer, no refusal) until Restore, so
// a client runs into its own timeouts.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	closeAll(p.conns)
}

// Restore forwards again. Connections accepted while cut are closed, as a client that timed out
// would have abandoned them.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	closeAll(p.held)
}

// SetDelay holds every chunk of bytes a client sends for d before the server gets it (0: none),
// a slow network or a slow server.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// accept serves connections until the listener is closed.
func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.held[c] = struct{}{} // silent until Restore or close
		} else {
			p.conns[c] = struct{}{}
			p.wg.Go(func() { p.forward(c) })
		}
		p.mu.Unlock()
	}
}

// forward connects c to the target and copies both ways until either side closes.
func (p *Proxy) forward(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if _, open := p.conns[c]; !open { // cut while dialing
		p.mu.Unlock()
		s.Close()
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	var pair sync.WaitGroup
	pair.Go(func() { p.copy(s, c, true); p.drop(c); p.drop(s) })
	pair.Go(func() { p.copy(c, s, false); p.drop(c); p.drop(s) })
	pair.Wait()
}

// copy copies from src to dst until either fails; bytes towards the server wait for the delay.
func (p *Proxy) copy(dst, src net.Conn, toServer bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if toServer {
				p.mu.Lock()
				d := p.delay
				p.mu.Unlock()
				if d > 0 {
					time.Sleep(d)
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// drop closes c and forgets it.
func (p *Proxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// closeAll closes and forgets every connection of set; the proxy's lock is held.
func closeAll(set map[net.Conn]struct{}) {
	for c := range set {
		c.Close()
		delete(set, c)
	}
}

// close stops the proxy and waits for its goroutines.
func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	closeAll(p.conns)
	closeAll(p.held)
	p.mu.Unlock()
	p.wg.Wait()
}

// ProxyMongo starts a Proxy in front of the one MongoDB server of uri and returns uri pointed
// at the proxy (a direct connection), and the proxy. It skips the test for URIs a proxy
// cannot stand in for: another scheme, or several hosts.
func ProxyMongo(tb testing.TB, uri string) (string, *Proxy) {
	tb.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" || strings.Contains(u.Host, ",") {
		tb.Skip("the MongoDB URI is not one mongodb:// host, which a proxy can stand in for")
	}
	proxy := StartProxy(tb, u.Host)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("directConnection", "true")
	u.RawQuery = q.Encode()
	return u.String(), proxy
}
