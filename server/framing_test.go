package server

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gatehouse"
)

// pathCounter is an upstream that reads each request's whole body and
// records the paths it was asked for, so that a test sees whether anything
// was smuggled past the gateway.
type pathCounter struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newPathCounter(t *testing.T) *pathCounter {
	u := &pathCounter{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.Path)
		u.mu.Unlock()
		if err != nil {
			return
		}
		io.WriteString(w, "got "+string(b))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *pathCounter) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.paths)
}

// rawGateway runs the real server (its proxy listener, as Run serves it) in
// front of a path-counting upstream, and logs into a buffer.
func rawGateway(t *testing.T) (proxy string, up *pathCounter, logs *syncBuffer) {
	t.Helper()
	logs = &syncBuffer{}
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	up = newPathCounter(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: strings.TrimPrefix(up.URL, "http://"), Scheme: "http"}}
		s.PublicPatterns = []string{"/.*"}
	}))
	proxy, _, stop := running(t, h)
	t.Cleanup(func() { stop() })
	return proxy, up, logs
}

// exchangeRaw writes each part to a new connection (half-closing it after
// the last when closeWrite), then reads every answer until the gateway
// closes the connection. It fails the test if the gateway keeps the
// connection open after its answers.
func exchangeRaw(t *testing.T, proxy string, closeWrite bool, parts ...string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range parts {
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("reading answer %d: %v", len(out)+1, err)
			}
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
		if resp.Close {
			// The gateway said it closes: the connection must end here.
			if n, _ := br.Read(make([]byte, 1)); n != 0 {
				t.Fatalf("bytes after an answer with Connection: close")
			}
			return out
		}
	}
}

// body is the answer's body (exchangeRaw read it already); it may be asked again.
func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: api.test\r\n\r\n"

// TestFramingRefused: a request with both Content-Length and
// Transfer-Encoding, or Transfer-Encoding on HTTP/1.0, is answered 400 and
// its connection closed; the request hidden after it never reaches the
// upstream, and neither does the refused request itself.
func TestFramingRefused(t *testing.T) {
	t.Parallel()
	proxy, up, _ := rawGateway(t)
	cases := []struct {
		name   string
		parts  []string
		before []string // bodies of the 200 answers before the refusal
	}{
		{name: "content-length then transfer-encoding", parts: []string{
			"POST /cl-te HTTP/1.1\r\nHost: api.test\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled}},
		{name: "transfer-encoding then content-length", parts: []string{
			"POST /te-cl HTTP/1.1\r\nHost: api.test\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n" + smuggled}},
		{name: "transfer-encoding on HTTP/1.0 keep-alive", parts: []string{
			"POST /te10 HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled}},
		{name: "transfer-encoding on HTTP/1.0 with content-length", parts: []string{
			"POST /te10cl HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello" + smuggled}},
		{name: "a framing header continued on a folded line", parts: []string{
			"POST /fold HTTP/1.1\r\nHost: api.test\r\nContent-Length:\r\n 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled}},
		{name: "head split across writes", parts: []string{
			"POST /split HTTP/1.1\r\nHost: api.test\r\nContent-Len", "gth: 5\r\nTransfer-Enc", "oding: chunked\r\n", "\r\n0\r\n\r\n" + smuggled}},
		{name: "after a good pipelined request", before: []string{"got hi"}, parts: []string{
			"POST /first HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\n\r\nhi" +
				"POST /second HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			answers := exchangeRaw(t, proxy, false, tc.parts...)
			if len(answers) != len(tc.before)+1 {
				t.Fatalf("%d answers, want %d", len(answers), len(tc.before)+1)
			}
			for i, want := range tc.before {
				if got := body(answers[i]); answers[i].StatusCode != 200 || got != want {
					t.Errorf("answer %d: %d %q, want 200 %q", i+1, answers[i].StatusCode, got, want)
				}
			}
			last := answers[len(answers)-1]
			if last.StatusCode != 400 || last.Header.Get("Otoroshi-Error-Msg") != "bad request" ||
				last.Header.Get("Otoroshi-Error") != "true" || body(last) != `{"Otoroshi-Error":"bad request"}` || !last.Close {
				t.Errorf("refusal: %d %q %q close=%v", last.StatusCode, last.Header.Get("Otoroshi-Error-Msg"), body(last), last.Close)
			}
		})
	}
	if seen := up.seen(); !slices.Equal(seen, []string{"/first"}) {
		t.Errorf("upstream saw %q, want only /first", seen)
	}
}

// TestFramingKeepsGoodConnections: framing that net/http reads correctly
// keeps the connection and every pipelined request, even bodies that hold
// what looks like a refused head.
func TestFramingKeepsGoodConnections(t *testing.T) {
	t.Parallel()
	proxy, up, logs := rawGateway(t)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	lookalike := "GET /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
	answers := exchangeRaw(t, proxy, false,
		"POST /a HTTP/1.1\r\nHost: api.test\r\nContent-Length: "+strconv.Itoa(len(lookalike))+"\r\n\r\n"+lookalike,
		"POST /b HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"4;ext=1\r\nwiki\r\n"+strconv.FormatInt(int64(len(lookalike)), 16)+"\r\n"+lookalike+"\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"GET /c HTTP/1.1\r\nHost: api.test\r\nContent-Length:  0 \r\n\r\n",
		"POST /d HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"GET /e HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n",
	)
	want := []string{"got " + lookalike, "got wiki" + lookalike, "got ", "got ok", "got "}
	if len(answers) != len(want) {
		t.Fatalf("%d answers, want %d", len(answers), len(want))
	}
	for i, a := range answers {
		if a.StatusCode != 200 || body(a) != want[i] {
			t.Errorf("answer %d: %d %q, want 200 %q", i+1, a.StatusCode, body(a), want[i])
		}
	}
	if seen := up.seen(); !slices.Equal(seen, []string{"/a", "/b", "/c", "/d", "/e"}) {
		t.Errorf("upstream saw %q", seen)
	}
}

// TestBrokenBodies: a body that breaks its own framing is the client's
// fault: 400 bad request, never 502, not logged as an upstream failure, and
// nothing after it on the connection reaches the upstream.
func TestBrokenBodies(t *testing.T) {
	t.Parallel()
	proxy, up, logs := rawGateway(t)
	chunked := "POST /broken HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n"
	cases := []struct {
		name       string
		parts      []string
		closeWrite bool
	}{
		{name: "bad chunk size", parts: []string{chunked + "zz\r\nhello\r\n0\r\n\r\n" + smuggled}},
		{name: "chunk longer than announced", parts: []string{chunked + "3\r\nhello\r\n0\r\n\r\n" + smuggled}},
		{name: "huge chunk extension", parts: []string{chunked + "5;" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n" + smuggled}},
		{name: "fewer bytes than content-length", closeWrite: true, parts: []string{
			"POST /broken HTTP/1.1\r\nHost: api.test\r\nContent-Length: 100\r\n\r\nonly a few bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			answers := exchangeRaw(t, proxy, tc.closeWrite, tc.parts...)
			if len(answers) != 1 {
				t.Fatalf("%d answers, want 1", len(answers))
			}
			a := answers[0]
			if a.StatusCode != 400 || a.Header.Get("Otoroshi-Error-Msg") != "bad request" || body(a) != `{"Otoroshi-Error":"bad request"}` || !a.Close && !tc.closeWrite {
				t.Errorf("%d %q %q close=%v, want 400 bad request, Connection: close", a.StatusCode, a.Header.Get("Otoroshi-Error-Msg"), body(a), a.Close)
			}
		})
	}
	for _, p := range up.seen() {
		if p != "/broken" {
			t.Errorf("upstream saw %q", p)
		}
	}
	if strings.Contains(logs.String(), "upstream failed") {
		t.Errorf("a client's broken body was logged as an upstream failure:\n%s", logs)
	}
}

// FuzzFramingSplit: the connection's framing watch reaches the same verdict
// at the same byte however the stream is cut into reads (net/http reads as
// the kernel delivers, down to one byte at a time).
func FuzzFramingSplit(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint16(20))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.0\nTransfer-Encoding: x\n\n"), uint16(50))
	f.Add([]byte("POST / HTTP/1.1\r\ncontent-length:  2 \r\n\r\nhiGET / HTTP/1.1\r\nContent-Length:\r\n 1\r\nTransfer-Encoding: chunked\r\n\r\n"), uint16(44))
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		whole := newFraming()
		wantKeep, wantOK := whole.scan(b)

		k := int(cut) % (len(b) + 1)
		split := newFraming()
		keep, ok := split.scan(b[:k])
		if ok {
			keep, ok = split.scan(b[k:])
			keep += k
		}
		bytewise := newFraming()
		byteKeep, byteOK := len(b), true
		for i := range b {
			if n, ok := bytewise.scan(b[i : i+1]); !ok {
				byteKeep, byteOK = i+n, false
				break
			}
		}
		if ok != wantOK || byteOK != wantOK || (!wantOK && (keep != wantKeep || byteKeep != wantKeep)) {
			t.Fatalf("whole: %v at %d; cut at %d: %v at %d; byte by byte: %v at %d", wantOK, wantKeep, k, ok, keep, byteOK, byteKeep)
		}
		if wantOK && (split != whole || bytewise != whole) {
			t.Fatalf("state after the stream differs: whole %+v, cut at %d %+v, byte by byte %+v", whole, k, split, bytewise)
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzFramingAgreesWithNetHTTP: the framing watch and net/http's own
// request parser agree on where each request ends. For every HTTP/1.x
// request net/http reads whole (head and body) from the stream, the watch
// is at the start of a head right after it, never lost; and when it refuses
// a head, that head does carry Transfer-Encoding with Content-Length (or on
// HTTP/1.0), or a folded line.
func FuzzFramingAgreesWithNetHTTP(f *testing.F) {
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.0\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;e\r\nhi\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.0\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 0\n\n"))
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\nContent-Length:  01 \r\n\r\nx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		br := bufio.NewReader(cr)
		fr := newFraming()
		pos := 0
		for {
			start := cr.n - br.Buffered()
			req, err := http.ReadRequest(br)
			if err != nil || req.ProtoMajor != 1 {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			end := cr.n - br.Buffered()
			keep, ok := fr.scan(b[pos:end])
			if !ok {
				at := pos + keep
				tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b[start:])))
				line, _ := tp.ReadLine()
				hdr, _ := tp.ReadMIMEHeader()
				te, cl := len(hdr["Transfer-Encoding"]) > 0, len(hdr["Content-Length"]) > 0
				fold := bytes.Contains(b[start:at], []byte("\n ")) || bytes.Contains(b[start:at], []byte("\n\t"))
				if at < start || !(te && (cl || strings.HasSuffix(line, "HTTP/1.0")) || fold) {
					t.Fatalf("refused at byte %d a request net/http read well from %d to %d: %q", at, start, end, b[start:end])
				}
				return
			}
			pos = end
			if fr.state != inHead || fr.lines != 0 || fr.lineLen != 0 || fr.cr {
				t.Fatalf("after a request net/http read from %d to %d, the watch is in state %d (line %d, %d bytes): %q",
					start, end, fr.state, fr.lines, fr.lineLen, b[start:end])
			}
		}
	})
}

// TestFramingRefusedWhileServing: a refused head that completes while the
// request before it is still being served (net/http's one-byte background
// read gets its last byte) neither cancels that request nor goes unanswered.
func TestFramingRefusedWhileServing(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "slow")
	}))
	t.Cleanup(up.Close)
	h := newHarness(t)
	h.group("g")
	h.service(newService("api", "g", "api.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: strings.TrimPrefix(up.URL, "http://"), Scheme: "http"}}
		s.PublicPatterns = []string{"/.*"}
	}))
	proxy, _, stop := running(t, h)
	defer stop()

	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := "POST /bad HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\n"+bad[:len(bad)-1])
	<-arrived // the gateway is serving /slow, its background read waiting
	io.WriteString(c, bad[len(bad)-1:]+"0\r\n\r\n"+smuggled)
	close(release)
	br := bufio.NewReader(c)
	for i, want := range []struct {
		status int
		body   string
	}{{200, "slow"}, {400, `{"Otoroshi-Error":"bad request"}`}} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		if got := body(resp); resp.StatusCode != want.status || got != want.body {
			t.Fatalf("answer %d: %d %q, want %d %q", i+1, resp.StatusCode, got, want.status, want.body)
		}
	}
	if n, _ := br.Read(make([]byte, 1)); n != 0 {
		t.Error("the connection stayed open after the refusal")
	}
}

// TestUpstreamFailureWithBody: the control of TestBrokenBodies: a request
// with a good body whose upstream resets the connection while reading it
// is the upstream's failure, 502, and logged as one.
func TestUpstreamFailureWithBody(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, 10))
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}))
	t.Cleanup(up.Close)
	logs := &syncBuffer{}
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	h.group("g")
	h.service(newService("api", "g", "api.test", nil, func(s *gatehouse.Service) {
		s.Targets = []gatehouse.Target{{Host: strings.TrimPrefix(up.URL, "http://"), Scheme: "http"}}
		s.PublicPatterns = []string{"/.*"}
	}))
	proxy, _, stop := running(t, h)
	defer stop()
	answers := exchangeRaw(t, proxy, false, "POST /x HTTP/1.1\r\nHost: api.test\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"+
		strings.Repeat("z", 100000))
	if len(answers) != 1 || answers[0].StatusCode != 502 || answers[0].Header.Get("Otoroshi-Error-Msg") != "bad gateway" {
		t.Fatalf("%d answers, first %d %q, want 502 bad gateway", len(answers), answers[0].StatusCode, answers[0].Header.Get("Otoroshi-Error-Msg"))
	}
	if !strings.Contains(logs.String(), "upstream failed") {
		t.Errorf("the upstream's failure was not logged:\n%s", logs)
	}
}
