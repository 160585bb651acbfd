package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/websocket"

	"gatehouse"
)

// wsUpstream is a WebSocket echo server that records each handshake's headers.
type wsUpstream struct {
	*httptest.Server
	mu         sync.Mutex
	handshakes []http.Header
}

func newWSUpstream(t *testing.T) *wsUpstream {
	u := &wsUpstream{}
	u.Server = httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		u.mu.Lock()
		u.handshakes = append(u.handshakes, ws.Request().Header.Clone())
		u.mu.Unlock()
		io.Copy(ws, ws)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *wsUpstream) lastHandshake() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.handshakes) == 0 {
		return nil
	}
	return u.handshakes[len(u.handshakes)-1]
}

// wsFrame is a masked text frame, as a client sends it (RFC 6455 section 5).
func wsFrame(payload string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	b := []byte{0x81, 0x80 | byte(len(payload))}
	b = append(b, mask[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^mask[i%4])
	}
	return b
}

// wsDial opens a WebSocket through the gateway by hand, so that the test
// sees the handshake's answer: it returns that answer and the connection's
// reader (frames follow it).
func wsDial(t *testing.T, proxy, host string, header ...string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /chat HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://" + host + "\r\n"
	for i := 0; i+1 < len(header); i += 2 {
		req += header[i] + ": " + header[i+1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

// wsEcho sends one text frame and reads the upstream's echo of it.
func wsEcho(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	if _, err := c.Write(wsFrame(msg)); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x81, byte(len(msg))}, msg...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo %q, want %q", got, want)
	}
}

// TestWebSocketThroughPlugins: WebSocket upgrades are proxied on a service
// without plugins and on one with plugins. The plugins see the handshake
// (the upstream gets the header a plugin set; the 101 carries the header a
// plugin set on the answer); the upgraded stream does not pass through them,
// nor through the connection's HTTP framing: a frame holding what looks like
// a refused request head goes through.
func TestWebSocketThroughPlugins(t *testing.T) {
	t.Parallel()
	h := newPluginHarness(t)
	rw := h.upload("rewrite", guests(t)["rewrite"], "")
	up := newWSUpstream(t)
	target := []gatehouse.Target{{Host: strings.TrimPrefix(up.URL, "http://"), Scheme: "http"}}
	h.service(newService("plain", "g", "plain.test", nil, func(s *gatehouse.Service) { s.Targets = target }, public))
	h.service(newService("plugged", "g", "plugged.test", nil, func(s *gatehouse.Service) { s.Targets = target }, public))
	h.service(newService("keyed", "g", "keyed.test", nil, func(s *gatehouse.Service) { s.Targets = target }))
	h.key(newKey("ws", "s3cret", func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"service_keyed"} }))
	cfg := `{"requestHeaders": {"X-From-Gateway": "yes"}, "responseHeaders": {"X-Rewritten": "1"}}`
	h.attach("plugged", ref(rw.ID, cfg))
	h.attach("keyed", ref(rw.ID, cfg))
	proxy, _, stop := running(t, h.harness)
	defer stop()

	lookalike := "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	cases := []struct {
		host, plugin string
		header       []string
	}{
		{host: "plain.test"},
		{host: "plugged.test", plugin: "yes"},
		{host: "keyed.test", plugin: "yes", header: []string{"Authorization", "Basic d3M6czNjcmV0"}}, // ws:s3cret
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			c, br, resp := wsDial(t, proxy, tc.host, tc.header...)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: status %d %q", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
			}
			if resp.Header.Get("Otoroshi-Request-Id") == "" {
				t.Errorf("101 without Otoroshi-Request-Id: %v", resp.Header)
			}
			if got := resp.Header.Get("X-Rewritten"); got != map[string]string{"yes": "1"}[tc.plugin] {
				t.Errorf("101 X-Rewritten = %q (plugin %q)", got, tc.plugin)
			}
			hs := up.lastHandshake()
			if got := hs.Get("X-From-Gateway"); got != tc.plugin {
				t.Errorf("upstream handshake X-From-Gateway = %q, want %q", got, tc.plugin)
			}
			if tc.header != nil && (hs.Get("Otoroshi-Client-Id") != "ws" || hs.Get("Authorization") != "") {
				t.Errorf("keyed handshake: Otoroshi-Client-Id %q, Authorization %q", hs.Get("Otoroshi-Client-Id"), hs.Get("Authorization"))
			}
			wsEcho(t, c, br, "hello")
			wsEcho(t, c, br, lookalike)
			wsEcho(t, c, br, "still open")
		})
	}

	// A refused handshake is an ordinary answer.
	_, _, resp := wsDial(t, proxy, "keyed.test")
	if resp.StatusCode != 401 || resp.Header.Get("Otoroshi-Error-Msg") != "no apikey" {
		t.Errorf("handshake without a key: %d %q", resp.StatusCode, resp.Header.Get("Otoroshi-Error-Msg"))
	}
}
