package server

import (
	"bytes"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
)

// net/http refuses a request line whose path does not decode (an invalid
// %-escape) before any handler runs, writing this plain answer straight to
// the connection. The contract wants the gateway's own answer there (400
// "bad request path" with the Otoroshi-Error headers), so the proxy
// listener's connections notice such request lines as they are read and
// swap the plain answer for ours. Other malformed requests keep net/http's.
var (
	goBadRequest  = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")
	badPathAnswer = func() []byte {
		body := `{"Otoroshi-Error":"` + msgBadPath + `"}`
		return []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nOtoroshi-Error: true\r\n" +
			"Otoroshi-Error-Msg: " + msgBadPath + "\r\nCache-Control: no-store\r\nConnection: close\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}()
)

type badPathListener struct{ net.Listener }

func (l badPathListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &badPathConn{Conn: c}, nil
}

type badPathConn struct {
	net.Conn
	sawBadPath atomic.Bool
}

func (c *badPathConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	// Most reads hold no '%' at all: one vectorised scan, nothing more.
	if n > 0 && bytes.IndexByte(p[:n], '%') >= 0 && hasBadRequestLine(p[:n]) {
		c.sawBadPath.Store(true)
	}
	return n, err
}

func (c *badPathConn) Write(p []byte) (int, error) {
	if c.sawBadPath.Load() && bytes.Equal(p, goBadRequest) {
		if _, err := c.Conn.Write(badPathAnswer); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// hasBadRequestLine reports whether b holds a request line ("METHOD target
// HTTP/1.x") whose target does not parse as a request URI.
func hasBadRequestLine(b []byte) bool {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 || !isToken(line[:sp]) {
			continue
		}
		rest := line[sp+1:]
		sp2 := bytes.LastIndexByte(rest, ' ')
		if sp2 < 0 || !bytes.HasPrefix(rest[sp2+1:], []byte("HTTP/1.")) {
			continue
		}
		target := rest[:sp2]
		if bytes.IndexByte(target, '%') < 0 {
			continue
		}
		if _, err := url.ParseRequestURI(string(target)); err != nil {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
