//go:build wasip1

package guest

import "unsafe"

// Features are the flags of enable_features.
type Features uint32

const (
	BufferRequest  Features = 1 // read the request body and still send it on
	BufferResponse Features = 2 // read and rewrite the response body in handle_response
	Trailers       Features = 4 // HTTP trailers
)

// EnableFeatures enables features (for every request when called from
// init, else for the current request) and returns those now enabled.
func EnableFeatures(f Features) Features { return Features(hEnableFeatures(uint32(f))) }

// LogLevel is the ABI's log level.
type LogLevel int32

const (
	LevelDebug LogLevel = -1
	LevelInfo  LogLevel = 0
	LevelWarn  LogLevel = 1
	LevelError LogLevel = 2
	LevelNone  LogLevel = 3
)

// Log writes msg to the host's log.
func Log(level LogLevel, msg string) { hLog(int32(level), strPtr(msg), uint32(len(msg))) }

// LogEnabled reports whether the host logs at level.
func LogEnabled(level LogLevel) bool { return hLogEnabled(int32(level)) == 1 }

var config []byte
var configRead bool

// Config is the attachment's config string; it never changes for an instance.
func Config() []byte {
	if !configRead {
		config = []byte(readString(hGetConfig))
		configRead = true
	}
	return config
}

// Request is the incoming request.
type Request struct{}

// Response is the response: the guest's own, or next's in HandleResponse.
type Response struct{}

func (Request) Method() string          { return readString(hGetMethod) }
func (Request) SetMethod(m string)      { hSetMethod(strPtr(m), uint32(len(m))) }
func (Request) URI() string             { return readString(hGetURI) }
func (Request) SetURI(u string)         { hSetURI(strPtr(u), uint32(len(u))) }
func (Request) ProtocolVersion() string { return readString(hGetProtocolVersion) }
func (Request) SourceAddr() string      { return readString(hGetSourceAddr) }
func (Request) Header() Header          { return Header{0} }
func (Request) Trailers() Header        { return Header{2} }
func (Request) Body() Body              { return Body{0} }
func (Response) StatusCode() int        { return int(hGetStatusCode()) }
func (Response) SetStatusCode(code int) { hSetStatusCode(uint32(code)) }
func (Response) Header() Header         { return Header{1} }
func (Response) Trailers() Header       { return Header{3} }
func (Response) Body() Body             { return Body{1} }

// Header is a request or response header (or trailer) map.
type Header struct{ kind uint32 }

// Get returns the first value of name, or "".
func (h Header) Get(name string) string {
	if v := h.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Has reports whether name is present.
func (h Header) Has(name string) bool {
	return hGetHeaderValues(h.kind, strPtr(name), uint32(len(name)), nil, 0)>>32 > 0
}

// Values returns every value of name (case-insensitive).
func (h Header) Values(name string) []string {
	return readList(func(p unsafe.Pointer, limit uint32) uint64 {
		return hGetHeaderValues(h.kind, strPtr(name), uint32(len(name)), p, limit)
	})
}

// Names returns the header names, in lowercase.
func (h Header) Names() []string {
	return readList(func(p unsafe.Pointer, limit uint32) uint64 { return hGetHeaderNames(h.kind, p, limit) })
}

func (h Header) Set(name, value string) {
	hSetHeaderValue(h.kind, strPtr(name), uint32(len(name)), strPtr(value), uint32(len(value)))
}

func (h Header) Add(name, value string) {
	hAddHeaderValue(h.kind, strPtr(name), uint32(len(name)), strPtr(value), uint32(len(value)))
}

func (h Header) Remove(name string) { hRemoveHeader(h.kind, strPtr(name), uint32(len(name))) }

// Body is the request or response body.
type Body struct{ kind uint32 }

// Read reads the next bytes of the body into p (p must not be empty).
func (b Body) Read(p []byte) (n int, eof bool) {
	r := hReadBody(b.kind, unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
	return int(uint32(r)), r>>32 == 1
}

// ReadAll reads the rest of the body.
func (b Body) ReadAll() []byte {
	var out []byte
	chunk := make([]byte, 4096)
	for {
		n, eof := b.Read(chunk)
		out = append(out, chunk[:n]...)
		if eof {
			return out
		}
	}
}

// Write appends p to the body; the first write of a call replaces it.
func (b Body) Write(p []byte) {
	hWriteBody(b.kind, unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
}

// WriteString is Write for a string.
func (b Body) WriteString(s string) { hWriteBody(b.kind, strPtr(s), uint32(len(s))) }

var (
	reqFn  func(Request, Response) (next bool, reqCtx uint32)
	respFn func(reqCtx uint32, req Request, resp Response, isError bool)
)

// HandleRequest sets the request handler. It returns next=true to pass the
// request on, or false when it answered through resp; reqCtx comes back
// to the response handler.
func HandleRequest(fn func(req Request, resp Response) (next bool, reqCtx uint32)) { reqFn = fn }

// HandleResponse sets the response handler, called after next answered.
func HandleResponse(fn func(reqCtx uint32, req Request, resp Response, isError bool)) { respFn = fn }

//go:wasmexport handle_request
func handleRequest() uint64 {
	if reqFn == nil {
		return 1
	}
	next, reqCtx := reqFn(Request{}, Response{})
	r := uint64(reqCtx) << 32
	if next {
		r |= 1
	}
	return r
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {
	if respFn != nil {
		respFn(reqCtx, Request{}, Response{}, isError != 0)
	}
}

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

var buf = make([]byte, 1024)

// readString calls a get_X function, growing the buffer when the value did not fit.
func readString(get func(p unsafe.Pointer, limit uint32) uint32) string {
	n := get(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if n > uint32(len(buf)) {
		buf = make([]byte, n)
		n = get(unsafe.Pointer(&buf[0]), n)
	}
	return string(buf[:n])
}

// readList calls a count_len function and splits its NUL-terminated values.
func readList(get func(p unsafe.Pointer, limit uint32) uint64) []string {
	r := get(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	n := uint32(r)
	if n > uint32(len(buf)) {
		buf = make([]byte, n)
		r = get(unsafe.Pointer(&buf[0]), n)
		n = uint32(r)
	}
	count := int(r >> 32)
	if count == 0 {
		return nil
	}
	out := make([]string, 0, count)
	start := 0
	for i := 0; i < int(n); i++ {
		if buf[i] == 0 {
			out = append(out, string(buf[start:i]))
			start = i + 1
		}
	}
	return out
}
