package plugins

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Feature flags of enable_features.
const (
	featureBufferRequest  = 1
	featureBufferResponse = 2
	featureTrailers       = 4
	featuresSupported     = featureBufferRequest | featureBufferResponse | featureTrailers
)

// Header and body kinds of the ABI.
const (
	kindRequest          = 0
	kindResponse         = 1
	kindRequestTrailers  = 2
	kindResponseTrailers = 3
)

// Errors a host function panics with: wazero turns the panic into an error
// returned by the guest call (a trap), and the instance is thrown away. The
// spec asks hosts to trap on every misuse.
var (
	errOutOfRange  = errors.New("guest pointer or length out of memory range")
	errNoRequest   = errors.New("no request in progress (called during start?)")
	errBadKind     = errors.New("unknown header or body kind")
	errBadName     = errors.New("invalid header name")
	errBadValue    = errors.New("invalid header value")
	errBadMethod   = errors.New("invalid method")
	errBadURI      = errors.New("invalid uri")
	errBadStatus   = errors.New("invalid status code")
	errZeroLimit   = errors.New("read_body with a zero buf_limit")
	errNoTrailers  = errors.New("trailers used without enabling the trailers feature")
	errNoBuffering = errors.New("response body written in handle_response without buffer_response")
	errReqPhase    = errors.New("request body written after the request was sent")
	errGuestBody   = errors.New("response body written by the guest is over 8 MiB")
)

type hostFunc struct {
	fn      api.GoModuleFunc
	params  []api.ValueType
	results []api.ValueType
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFuncs is the "http_handler" module: every function of the spec.
var hostFuncs = map[string]hostFunc{
	"log":                  {hLog, []api.ValueType{i32, i32, i32}, nil},
	"log_enabled":          {hLogEnabled, []api.ValueType{i32}, []api.ValueType{i32}},
	"get_config":           {hGetConfig, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	"enable_features":      {hEnableFeatures, []api.ValueType{i32}, []api.ValueType{i32}},
	"get_method":           {hGetMethod, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	"set_method":           {hSetMethod, []api.ValueType{i32, i32}, nil},
	"get_uri":              {hGetURI, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	"set_uri":              {hSetURI, []api.ValueType{i32, i32}, nil},
	"get_protocol_version": {hGetProtocolVersion, []api.ValueType{i32, i32}, []api.ValueType{i32}},
	"add_header_value":     {hAddHeaderValue, []api.ValueType{i32, i32, i32, i32, i32}, nil},
	"set_header_value":     {hSetHeaderValue, []api.ValueType{i32, i32, i32, i32, i32}, nil},
	"remove_header":        {hRemoveHeader, []api.ValueType{i32, i32, i32}, nil},
	"get_header_names":     {hGetHeaderNames, []api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
	"get_header_values":    {hGetHeaderValues, []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i64}},
	"read_body":            {hReadBody, []api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
	"write_body":           {hWriteBody, []api.ValueType{i32, i32, i32}, nil},
	"get_status_code":      {hGetStatusCode, nil, []api.ValueType{i32}},
	"set_status_code":      {hSetStatusCode, []api.ValueType{i32}, nil},
	"get_source_addr":      {hGetSourceAddr, []api.ValueType{i32, i32}, []api.ValueType{i32}},
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder("http_handler")
	for name, f := range hostFuncs {
		b = b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// current is the instance making the host call.
func current(ctx context.Context) *instance {
	in, _ := ctx.Value(instKey{}).(*instance)
	if in == nil {
		panic(errNoRequest)
	}
	return in
}

// exchangeOf is the request the calling instance serves; request functions
// trap during start, when there is none.
func exchangeOf(ctx context.Context) *exchange {
	ex := current(ctx).ex
	if ex == nil {
		panic(errNoRequest)
	}
	return ex
}

// read returns a view of guest memory, trapping when it is out of range.
func read(mod api.Module, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(errOutOfRange)
	}
	return b
}

// writeIfFits writes data at buf when it fits in limit, and returns its length either way.
func writeIfFits(mod api.Module, buf, limit uint32, data []byte) uint32 {
	n := uint32(len(data))
	if n > 0 && n <= limit && !mod.Memory().Write(buf, data) {
		panic(errOutOfRange)
	}
	return n
}

func writeStringIfFits(mod api.Module, buf, limit uint32, s string) uint32 {
	n := uint32(len(s))
	if n > 0 && n <= limit && !mod.Memory().WriteString(buf, s) {
		panic(errOutOfRange)
	}
	return n
}

func u32(v uint64) uint32 { return uint32(v) }

func slogLevel(level int32) (slog.Level, bool) {
	switch {
	case level < 0:
		return slog.LevelDebug, true
	case level == 0:
		return slog.LevelInfo, true
	case level == 1:
		return slog.LevelWarn, true
	case level == 2:
		return slog.LevelError, true
	}
	return 0, false // 3 is "none"
}

func (in *instance) logger() *slog.Logger {
	if in.slot != nil {
		return in.slot.log
	}
	return in.ver.h.logger
}

func hLog(ctx context.Context, mod api.Module, stack []uint64) {
	in := current(ctx)
	lvl, ok := slogLevel(int32(stack[0]))
	if !ok {
		return
	}
	// The spec asks hosts to ignore a log they cannot read rather than trap.
	msg, ok := mod.Memory().Read(u32(stack[1]), u32(stack[2]))
	if !ok {
		return
	}
	in.logger().Log(context.Background(), lvl, string(msg))
}

func hLogEnabled(ctx context.Context, _ api.Module, stack []uint64) {
	in := current(ctx)
	lvl, ok := slogLevel(int32(stack[0]))
	stack[0] = 0
	if ok && in.logger().Enabled(context.Background(), lvl) {
		stack[0] = 1
	}
}

func hGetConfig(ctx context.Context, mod api.Module, stack []uint64) {
	in := current(ctx)
	stack[0] = uint64(writeIfFits(mod, u32(stack[0]), u32(stack[1]), in.config))
}

func hEnableFeatures(ctx context.Context, _ api.Module, stack []uint64) {
	in := current(ctx)
	f := u32(stack[0]) & featuresSupported
	if in.ex == nil { // during start: for every request of this instance
		in.features |= f
		stack[0] = uint64(in.features)
		return
	}
	in.ex.features |= f
	stack[0] = uint64(in.ex.features)
}

func hGetMethod(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	stack[0] = uint64(writeStringIfFits(mod, u32(stack[0]), u32(stack[1]), ex.r.Method))
}

func hSetMethod(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	m := read(mod, u32(stack[0]), u32(stack[1]))
	if !validToken(m) {
		panic(errBadMethod)
	}
	ex.r.Method = string(m)
}

func hGetURI(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	uri := ex.r.URL.RequestURI()
	if uri == "" {
		uri = "/"
	}
	stack[0] = uint64(writeStringIfFits(mod, u32(stack[0]), u32(stack[1]), uri))
}

func hSetURI(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	b := read(mod, u32(stack[0]), u32(stack[1]))
	if len(b) == 0 || b[0] != '/' || !validValue(b) {
		panic(errBadURI)
	}
	s := string(b)
	u, err := url.ParseRequestURI(s)
	if err != nil {
		panic(errBadURI)
	}
	ex.r.URL.Path, ex.r.URL.RawPath, ex.r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	ex.r.RequestURI = s
}

func hGetProtocolVersion(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	p := ex.r.Proto
	if p == "" {
		p = "HTTP/1.1"
	}
	stack[0] = uint64(writeStringIfFits(mod, u32(stack[0]), u32(stack[1]), p))
}

// header returns the header map of kind; forWrite creates a missing
// trailer map. Trailers need the trailers feature: reads see none without
// it, writes trap.
func (ex *exchange) header(kind uint32, forWrite bool) http.Header {
	switch kind {
	case kindRequest:
		return ex.r.Header
	case kindResponse:
		return ex.respHeader
	case kindRequestTrailers, kindResponseTrailers:
		if ex.features&featureTrailers == 0 {
			if forWrite {
				panic(errNoTrailers)
			}
			return nil
		}
		if kind == kindRequestTrailers {
			if ex.r.Trailer == nil && forWrite {
				ex.r.Trailer = http.Header{}
			}
			return ex.r.Trailer
		}
		if ex.respTrailer == nil && forWrite {
			ex.respTrailer = http.Header{}
		}
		return ex.respTrailer
	}
	panic(errBadKind)
}

// isHost: Go keeps the request's Host out of its header map; guests see it
// as the "host" header, as on the wire.
func isHost(kind uint32, name []byte) bool {
	return kind == kindRequest && len(name) == 4 &&
		(name[0]|0x20) == 'h' && (name[1]|0x20) == 'o' && (name[2]|0x20) == 's' && (name[3]|0x20) == 't'
}

// values finds the values of name, canonicalising only when the exact key misses.
func values(h http.Header, name []byte) []string {
	if v, ok := h[string(name)]; ok { // no allocation for the lookup
		return v
	}
	return h[textproto.CanonicalMIMEHeaderKey(string(name))]
}

func hGetHeaderNames(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind := u32(stack[0])
	h := ex.header(kind, false)
	buf := ex.scratch[:0]
	count := uint64(0)
	if kind == kindRequest && ex.r.Host != "" {
		buf = append(buf, "host\x00"...)
		count++
	}
	for k, v := range h {
		if len(v) == 0 || (kind == kindRequest && ex.r.Host != "" && strings.EqualFold(k, "host")) {
			continue
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf = append(buf, c)
		}
		buf = append(buf, 0)
		count++
	}
	ex.scratch = buf
	n := writeIfFits(mod, u32(stack[1]), u32(stack[2]), buf)
	stack[0] = count<<32 | uint64(n)
}

func hGetHeaderValues(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind := u32(stack[0])
	name := read(mod, u32(stack[1]), u32(stack[2]))
	h := ex.header(kind, false)
	buf := ex.scratch[:0]
	count := uint64(0)
	if isHost(kind, name) {
		if ex.r.Host != "" {
			buf = append(append(buf, ex.r.Host...), 0)
			count = 1
		}
	} else {
		for _, v := range values(h, name) {
			buf = append(append(buf, v...), 0)
			count++
		}
	}
	ex.scratch = buf
	n := writeIfFits(mod, u32(stack[3]), u32(stack[4]), buf)
	stack[0] = count<<32 | uint64(n)
}

// headerArgs reads and validates the name and value of a header write.
func headerArgs(mod api.Module, stack []uint64) (name, value []byte) {
	name = read(mod, u32(stack[1]), u32(stack[2]))
	value = read(mod, u32(stack[3]), u32(stack[4]))
	if !validToken(name) {
		panic(errBadName)
	}
	if !validValue(value) {
		panic(errBadValue)
	}
	return name, value
}

func hSetHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind := u32(stack[0])
	name, value := headerArgs(mod, stack)
	if isHost(kind, name) {
		ex.r.Host = string(value)
		return
	}
	ex.header(kind, true).Set(string(name), string(value))
}

func hAddHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind := u32(stack[0])
	name, value := headerArgs(mod, stack)
	if isHost(kind, name) { // a request has one host
		ex.r.Host = string(value)
		return
	}
	ex.header(kind, true).Add(string(name), string(value))
}

func hRemoveHeader(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind := u32(stack[0])
	name := read(mod, u32(stack[1]), u32(stack[2]))
	if isHost(kind, name) {
		ex.r.Host = ""
		return
	}
	h := ex.header(kind, true)
	delete(h, string(name))
	h.Del(string(name))
}

func hReadBody(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind, buf, limit := u32(stack[0]), u32(stack[1]), u32(stack[2])
	if limit == 0 {
		panic(errZeroLimit)
	}
	var body []byte
	var off *int
	switch kind {
	case kindRequest:
		if !ex.responding {
			ex.bufferRequest()
		}
		if ex.reqBuffered {
			body, off = ex.reqBody, &ex.reqOff
		}
	case kindResponse:
		// Without buffer_response the upstream's body streams past the
		// guest: it reads EOF, as the spec allows.
		if ex.respBuffered {
			body, off = ex.respBody, &ex.respOff
		}
	default:
		panic(errBadKind)
	}
	if off == nil {
		stack[0] = 1 << 32
		return
	}
	rest := body[min(*off, len(body)):]
	n := min(len(rest), int(limit))
	if n > 0 && !mod.Memory().Write(buf, rest[:n]) {
		panic(errOutOfRange)
	}
	*off += n
	eof := uint64(0)
	if *off >= len(body) {
		eof = 1
	}
	stack[0] = eof<<32 | uint64(n)
}

func hWriteBody(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	kind := u32(stack[0])
	data := read(mod, u32(stack[1]), u32(stack[2]))
	switch kind {
	case kindRequest:
		if ex.responding {
			panic(errReqPhase)
		}
		// The first write of a call replaces the body: the original is never read.
		if !ex.reqWritten {
			ex.reqWritten, ex.reqBuffered = true, true
			ex.reqBody = ex.reqBody[:0]
		}
		if len(ex.reqBody)+len(data) > MaxBodyBytes {
			ex.bodyErr = ErrBodyTooLarge
			panic(ErrBodyTooLarge)
		}
		ex.reqBody = append(ex.reqBody, data...)
	case kindResponse:
		if ex.responding && !ex.respBuffered {
			panic(errNoBuffering)
		}
		if !ex.respWritten {
			ex.respWritten, ex.respBuffered = true, true
			ex.respBody = ex.respBody[:0]
		}
		if len(ex.respBody)+len(data) > MaxBodyBytes {
			panic(errGuestBody)
		}
		ex.respBody = append(ex.respBody, data...)
	default:
		panic(errBadKind)
	}
}

func hGetStatusCode(ctx context.Context, _ api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	s := ex.status
	if s == 0 {
		s = http.StatusOK
	}
	stack[0] = uint64(s)
}

func hSetStatusCode(ctx context.Context, _ api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	code := int32(stack[0])
	// A final status only: a 1xx would go out as an informational answer
	// (101 would even hand the connection over), which no plugin may cause.
	if code < 200 || code > 999 {
		panic(errBadStatus)
	}
	ex.status = int(code)
}

func hGetSourceAddr(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx)
	stack[0] = uint64(writeStringIfFits(mod, u32(stack[0]), u32(stack[1]), ex.source()))
}

// validToken reports whether b is an RFC 9110 token (header names, methods).
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '(' || c == ')' || c == ',' || c == '/' ||
			c == ':' || c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' ||
			c == '[' || c == '\\' || c == ']' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// validValue rejects the bytes that would split or end a header line.
func validValue(b []byte) bool {
	for _, c := range b {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}
