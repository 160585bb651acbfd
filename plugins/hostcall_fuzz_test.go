package plugins

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"gatehouse"

	"github.com/tetratelabs/wazero/api"
)

// FuzzHostCalls drives the http_handler host functions the way a hostile
// guest and a hostile client can: the fuzzer writes the client's request
// (method, URI, header block, body) and, for each of two attachments of an
// interpreter guest, a script of host calls with arbitrary pointers,
// lengths, buffer limits, kinds and codes, run in handle_request and in
// handle_response. Properties: nothing panics; a request either succeeds or
// fails with ErrFailure / ErrBodyTooLarge without anything written to the
// client; and a well-formed request through the same chain afterwards is
// served intact (trapped instances replaced, no state leaked).
//
// The script is a sequence of 21-byte records: an op byte (modulo the
// number of host functions + 1, in sorted name order; the last op returns
// from the handler with next = arg0 != 0 and reqCtx = arg1) and five
// little-endian uint32 arguments, of which the call takes as many as it has
// parameters. Scripts reach the guest as request headers X-Hc-<a|b>-<q|s>
// (q: handle_request, s: handle_response), which the guest reads with
// get_header_values into its own memory.
func FuzzHostCalls(f *testing.F) {
	for _, s := range hostCallSeeds() {
		f.Add(s.method, s.uri, s.header, s.body, s.reqA, s.respA, s.reqB, s.respB)
	}
	h := newTestHost(f)
	wasm := interpreterModule()
	if err := h.Check(context.Background(), wasm); err != nil {
		f.Fatalf("interpreter guest: %v", err)
	}
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name, p.PoolSize = "hostcalls", "hostcalls", 1
	if err := h.Load(context.Background(), p, wasm); err != nil {
		f.Fatal(err)
	}
	// a fails the request when it traps; b is failOpen and is skipped.
	chain, err := h.Chain("svc-hostcalls", []gatehouse.PluginRef{
		{Ref: "hostcalls", Config: "a"},
		{Ref: "hostcalls", Config: "b", FailOpen: true},
	})
	if err != nil {
		f.Fatal(err)
	}
	var upstream struct {
		calls  int
		method string
		uri    string
		host   string
		header http.Header
		body   string
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		upstream.calls++
		upstream.method, upstream.uri, upstream.host = r.Method, r.URL.RequestURI(), r.Host
		upstream.header, upstream.body = r.Header.Clone(), string(b)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Up", "up")
		_, _ = io.WriteString(w, "upstream")
	})

	f.Fuzz(func(t *testing.T, method, uri, header string, body, reqA, respA, reqB, respB []byte) {
		r := clientRequest(method, uri, header, body)
		for name, script := range map[string][]byte{"X-Hc-A-Q": reqA, "X-Hc-A-S": respA, "X-Hc-B-Q": reqB, "X-Hc-B-S": respB} {
			if len(script) > 0 {
				r.Header[name] = []string{string(script)}
			}
		}
		clientBody := &errBody{r: r.Body}
		r.Body = clientBody
		w := &watchWriter{rec: httptest.NewRecorder()}
		err := chain.Serve(w, r, "198.51.100.7", next)
		if err != nil {
			// A client's malformed body (say, truncated chunks) is its own error.
			clientErr := clientBody.err != nil && errors.Is(err, clientBody.err)
			if !errors.Is(err, ErrFailure) && !errors.Is(err, ErrBodyTooLarge) && !clientErr {
				t.Fatalf("Serve error %v: want ErrFailure, ErrBodyTooLarge or the body's read error", err)
			}
			if w.touched {
				t.Fatalf("Serve failed with %v after writing to the client", err)
			}
		}

		// A well-formed request through the same chain must be served intact.
		upstream.calls = 0
		ok, _ := http.NewRequest("POST", "http://gw.test/ok?x=1", strings.NewReader("payload"))
		ok.RemoteAddr = "198.51.100.8:5555"
		ok.Header.Set("X-Plain", "1")
		rec := httptest.NewRecorder()
		if err := chain.Serve(rec, ok, "198.51.100.8", next); err != nil {
			t.Fatalf("well-formed request after the fuzzed one: %v", err)
		}
		if upstream.calls != 1 || upstream.method != "POST" || upstream.uri != "/ok?x=1" ||
			upstream.host != "gw.test" || upstream.body != "payload" ||
			len(upstream.header) != 1 || upstream.header.Get("X-Plain") != "1" {
			t.Fatalf("upstream got %d calls, %s %s host %q header %v body %q",
				upstream.calls, upstream.method, upstream.uri, upstream.host, upstream.header, upstream.body)
		}
		res := rec.Result()
		if res.StatusCode != 200 || rec.Body.String() != "upstream" || len(res.Header) != 2 ||
			res.Header.Get("X-Up") != "up" || len(res.Trailer) != 0 {
			t.Fatalf("client got %d %v trailer %v body %q", res.StatusCode, res.Header, res.Trailer, rec.Body.String())
		}
	})
}

// clientRequest parses the fuzzer's request the way the server reads one
// off the wire; a request the parser refuses becomes a plain GET (with the
// fuzzer's body), so the scripts still run.
func clientRequest(method, uri, header string, body []byte) *http.Request {
	raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: gw.test\r\n%sContent-Length: %d\r\n\r\n%s", method, uri, header, len(body), body)
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		r = httptest.NewRequest("GET", "http://gw.test/", bytes.NewReader(body))
	}
	r.RemoteAddr = "198.51.100.7:4242"
	return r
}

// errBody records the read error of the client's body.
type errBody struct {
	r   io.ReadCloser
	err error
}

func (b *errBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *errBody) Close() error { return b.r.Close() }

// watchWriter records whether anything reached the client.
type watchWriter struct {
	rec     *httptest.ResponseRecorder
	touched bool
}

func (w *watchWriter) Header() http.Header { return w.rec.Header() }
func (w *watchWriter) WriteHeader(code int) {
	w.touched = true
	w.rec.WriteHeader(code) // panics on a code outside 100..999
}
func (w *watchWriter) Write(p []byte) (int, error) {
	w.touched = true
	return w.rec.Write(p)
}

// hostCallOps are the script's ops: the host functions in sorted order.
func hostCallOps() []string {
	names := make([]string, 0, len(hostFuncs))
	for n := range hostFuncs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Guest memory layout of the interpreter (one 64 KiB page).
const (
	icName      = 16   // the 8-byte name of the script header
	icConfig    = 32   // get_config's buffer (8 bytes)
	icScript    = 1024 // the script
	icScriptMax = 4096
	icRecord    = 21
)

// interpreterModule assembles the interpreter guest. It is written here in
// raw WebAssembly, so that nothing but the script decides its host calls.
func interpreterModule() []byte {
	ops := hostCallOps()
	n := uint32(len(ops))
	idx := func(name string) uint32 { return uint32(slices.Index(ops, name)) }
	vt := func(ts []api.ValueType) []byte { return vec(len(ts), ts) }

	var types, imports []byte
	for _, name := range ops {
		hf := hostFuncs[name]
		types = append(types, 0x60)
		types = append(types, vt(hf.params)...)
		types = append(types, vt(hf.results)...)
		imports = append(imports, str("http_handler")...)
		imports = append(imports, str(name)...)
		imports = append(imports, 0x00)
		imports = append(imports, uleb(idx(name))...)
	}
	// run(kind i32) i64; handle_request() i64; handle_response(i32, i32).
	types = append(types, 0x60, 1, wI32, 1, wI64)
	types = append(types, 0x60, 0, 1, wI64)
	types = append(types, 0x60, 2, wI32, wI32, 0)
	fRun, fReq, fResp := n, n+1, n+2

	// run's locals: 0 kind, 1 pc, 2 end.
	var c wasmCode
	c.i32(icConfig).i32(8).call(idx("get_config")).op(0x1a)
	c.i32(icName).i64(int64(binary.LittleEndian.Uint64([]byte("x-hc-?-?")))).mem(0x37, 0)
	c.i32(icName).i32(icConfig).mem(0x2d, 0).mem(0x3a, 5) // the attachment's letter
	c.i32(icName).get(0).mem(0x3a, 7)                     // q or s
	c.i32(0).i32(icName).i32(8).i32(icScript).i32(icScriptMax).call(idx("get_header_values"))
	c.op(0xa7).set(2) // end = (uint32) size
	c.get(2).i32(icScriptMax).op(0x4b).op(0x04, 0x40).i32(0).set(2).op(0x0b)
	c.i32(icScript).set(1)
	c.get(2).i32(icScript).op(0x6a).set(2)
	c.op(0x02, 0x40).op(0x03, 0x40) // block $exit, loop $top
	c.get(1).i32(icRecord).op(0x6a).get(2).op(0x4b).op(0x0d, 1)
	c.op(0x02, 0x40).op(0x02, 0x40) // block $cont, block $ret
	for range n {
		c.op(0x02, 0x40)
	}
	c.get(1).mem(0x2d, 0).i32(int32(n + 1)).op(0x70)
	c.op(0x0e).b = append(c.b, uleb(n+1)...)
	for i := range n + 1 {
		c.b = append(c.b, uleb(i)...)
	}
	c.b = append(c.b, uleb(n)...)
	for i, name := range ops {
		c.op(0x0b)
		hf := hostFuncs[name]
		if len(hf.params) > 5 {
			panic("host function with more than five parameters: " + name)
		}
		for k, p := range hf.params {
			c.get(1)
			if p == api.ValueTypeI64 {
				c.mem(0x35, uint32(1+4*k)) // i64.load32_u
			} else {
				c.mem(0x28, uint32(1+4*k))
			}
		}
		c.call(uint32(i))
		for range hf.results {
			c.op(0x1a)
		}
		c.op(0x0c).b = append(c.b, uleb(n-uint32(i))...) // br $cont
	}
	c.op(0x0b) // end $ret: return next = arg0 != 0, reqCtx = arg1
	c.get(1).mem(0x28, 1).i32(0).op(0x47).op(0xad)
	c.get(1).mem(0x28, 5).op(0xad).i64(32).op(0x86).op(0x84).op(0x0f)
	c.op(0x0b) // end $cont
	c.get(1).i32(icRecord).op(0x6a).set(1).op(0x0c, 0)
	c.op(0x0b, 0x0b) // end $top, end $exit
	c.i64(1)         // the script ran out: next, reqCtx 0
	run := append([]byte{1, 2, wI32}, c.b...)
	run = append(run, 0x0b)

	var hreq, hresp wasmCode
	hreq.i32('q').call(fRun)
	hresp.i32('s').call(fRun).op(0x1a)
	bodies := [][]byte{run, append(append([]byte{0}, hreq.b...), 0x0b), append(append([]byte{0}, hresp.b...), 0x0b)}
	var codeSec []byte
	for _, b := range bodies {
		codeSec = append(codeSec, uleb(uint32(len(b)))...)
		codeSec = append(codeSec, b...)
	}

	var exports []byte
	exports = append(exports, str("memory")...)
	exports = append(exports, 0x02, 0)
	exports = append(exports, str("handle_request")...)
	exports = append(exports, 0x00)
	exports = append(exports, uleb(fReq)...)
	exports = append(exports, str("handle_response")...)
	exports = append(exports, 0x00)
	exports = append(exports, uleb(fResp)...)

	m := []byte("\x00asm\x01\x00\x00\x00")
	m = section(m, 1, n+3, types)
	m = section(m, 2, n, imports)
	m = section(m, 3, 3, []byte{byte(n), byte(n + 1), byte(n + 2)})
	m = section(m, 5, 1, []byte{0x01, 1, 1}) // one page, no growth
	m = section(m, 7, 3, exports)
	m = section(m, 10, 3, codeSec)
	return m
}

// WebAssembly value types.
const (
	wI32 = 0x7f
	wI64 = 0x7e
)

// code is a function body under construction.
type wasmCode struct{ b []byte }

func (c *wasmCode) op(b ...byte) *wasmCode { c.b = append(c.b, b...); return c }
func (c *wasmCode) i32(v int32) *wasmCode  { return c.op(0x41).op(sleb(int64(v))...) }
func (c *wasmCode) i64(v int64) *wasmCode  { return c.op(0x42).op(sleb(v)...) }
func (c *wasmCode) get(l uint32) *wasmCode { return c.op(0x20).op(uleb(l)...) }
func (c *wasmCode) set(l uint32) *wasmCode { return c.op(0x21).op(uleb(l)...) }
func (c *wasmCode) call(f uint32) *wasmCode {
	return c.op(0x10).op(uleb(f)...)
}

// mem is a load or store with alignment 1 (guest pointers are unaligned).
func (c *wasmCode) mem(opcode byte, offset uint32) *wasmCode {
	return c.op(opcode, 0).op(uleb(offset)...)
}

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func str(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func vec(n int, ts []api.ValueType) []byte { return append(uleb(uint32(n)), ts...) }

func section(m []byte, id byte, count uint32, content []byte) []byte {
	body := append(uleb(count), content...)
	m = append(m, id)
	m = append(m, uleb(uint32(len(body)))...)
	return append(m, body...)
}

// script encodes host calls by name ("return" ends the handler).
type hostScript []byte

func (s hostScript) call(name string, args ...uint32) hostScript {
	op := slices.Index(hostCallOps(), name)
	if name == "return" {
		op = len(hostFuncs)
	}
	if op < 0 {
		panic("unknown host function " + name)
	}
	rec := make([]byte, icRecord)
	rec[0] = byte(op)
	for k, a := range args {
		binary.LittleEndian.PutUint32(rec[1+4*k:], a)
	}
	return append(s, rec...)
}

type hostCallSeed struct {
	method, uri, header            string
	body, reqA, respA, reqB, respB []byte
}

// hostCallSeeds are the in-code seeds: each host function well used and
// misused, in both phases. testdata/fuzz/FuzzHostCalls holds more.
func hostCallSeeds() []hostCallSeed {
	const (
		scratch = 8192 // a free area of guest memory
		end     = 65536
	)
	var full hostScript
	full = full.call("log", 0, icName, 8).
		call("log_enabled", 1).
		call("get_config", scratch, 8).
		call("enable_features", 7).
		call("get_method", scratch, 16).
		call("set_method", icName, 4). // "x-hc"
		call("get_uri", scratch, 64).
		call("set_uri", scratch, 1).
		call("get_protocol_version", scratch, 16).
		call("get_header_names", 0, scratch, 1024).
		call("get_header_values", 0, icName, 8, scratch, 1024).
		call("add_header_value", 0, icName, 8, icName, 8).
		call("set_header_value", 1, icName, 8, icName, 8).
		call("remove_header", 0, icName, 8).
		call("read_body", 0, scratch, 3).
		call("read_body", 0, scratch, 1024).
		call("write_body", 0, icName, 8).
		call("get_status_code").
		call("set_status_code", 299).
		call("get_source_addr", scratch, 64).
		call("add_header_value", 2, icName, 8, icName, 4).
		call("add_header_value", 3, icName, 8, icName, 4)
	resp := hostScript{}.call("get_status_code").
		call("read_body", 1, scratch, 1024).
		call("write_body", 1, icName, 8).
		call("set_status_code", 203).
		call("get_header_names", 1, scratch, 1024).
		call("get_header_names", 3, scratch, 1024)
	answer := hostScript{}.call("set_status_code", 451).call("write_body", 1, icName, 8).call("return", 0, 9)
	body := []byte("hello body")
	return []hostCallSeed{
		{method: "GET", uri: "/"},
		{method: "POST", uri: "/p?q=1", header: "X-A: 1\r\nX-A: 2\r\n", body: body, reqA: full, respA: resp, reqB: full, respB: resp},
		{method: "PUT", uri: "/answer", reqA: answer, respA: resp},
		{method: "GET", uri: "/b-answers", reqB: answer, respA: resp},
		// Misuse, each a trap: out of range, bad name/value/method/uri/status/kind, zero limit.
		{method: "GET", uri: "/", reqA: hostScript{}.call("get_uri", end, 64)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("set_uri", end-1, 2)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("set_uri", icName, 8)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("set_method", icScript, 8)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("set_header_value", 0, icName, 0, icName, 8)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("set_header_value", 0, icName, 8, icScript, 200)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("set_status_code", 1000)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("get_header_names", 9, scratch, 64)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("read_body", 0, scratch, 0)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("write_body", 7, icName, 8)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("add_header_value", 2, icName, 8, icName, 8)},
		{method: "POST", uri: "/", body: body, reqA: hostScript{}.call("read_body", 0, end-4, 64)},
		{method: "GET", uri: "/", reqB: hostScript{}.call("get_uri", end-1, 64)},
		{method: "GET", uri: "/", respA: hostScript{}.call("write_body", 1, icName, 8)},
		{method: "GET", uri: "/", respB: hostScript{}.call("set_status_code", 99)},
		{method: "GET", uri: "/", reqA: hostScript{}.call("enable_features", 2), respA: hostScript{}.call("read_body", 1, end-2, 64)},
	}
}

// TestHostCallInterpreter checks the interpreter guest itself, so that the
// fuzz target cannot silently test nothing: a script's calls take effect,
// and a misuse fails the request.
func TestHostCallInterpreter(t *testing.T) {
	h := newTestHost(t)
	p := gatehouse.DefaultPlugin()
	p.ID, p.Name, p.PoolSize = "hostcalls", "hostcalls", 1
	if err := h.Load(context.Background(), p, interpreterModule()); err != nil {
		t.Fatal(err)
	}
	chain, err := h.Chain("svc", []gatehouse.PluginRef{{Ref: "hostcalls", Config: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	var upHeader http.Header
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upHeader = r.Header.Clone()
		_, _ = io.WriteString(w, "upstream")
	})
	serve := func(req, resp hostScript) (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest("GET", "http://gw.test/", nil)
		r.Header["X-Hc-A-Q"] = []string{string(req)}
		r.Header["X-Hc-A-S"] = []string{string(resp)}
		rec := httptest.NewRecorder()
		return rec, chain.Serve(rec, r, "198.51.100.7", next)
	}

	// The header name "x-hc-a-q" sits at icName: add it as a header of its own.
	rec, err := serve(hostScript{}.call("add_header_value", 0, icName, 4, icName, 8),
		hostScript{}.call("set_header_value", 1, icName, 4, icName, 8).call("set_status_code", 299))
	if err != nil || upHeader.Get("X-Hc") != "x-hc-a-q" || rec.Code != 299 || rec.Header().Get("X-Hc") != "x-hc-a-s" {
		t.Fatalf("calls without effect: err %v, upstream %v, client %d %v", err, upHeader, rec.Code, rec.Header())
	}
	rec, err = serve(hostScript{}.call("set_status_code", 451).call("write_body", 1, icName, 8).call("return", 0, 9), nil)
	if err != nil || rec.Code != 451 || rec.Body.String() != "x-hc-a-q" {
		t.Fatalf("guest answer: err %v, %d %q", err, rec.Code, rec.Body.String())
	}
	for _, s := range []hostScript{
		hostScript{}.call("get_uri", 65536, 64),
		hostScript{}.call("set_status_code", 1000),
		hostScript{}.call("read_body", 0, 8192, 0),
	} {
		if _, err := serve(s, nil); !errors.Is(err, ErrFailure) {
			t.Fatalf("misuse %x: err %v, want ErrFailure", s, err)
		}
	}
}
