package plugins

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// Chain is the ordered list of a service's plugin attachments.
type Chain struct {
	h     *Host
	steps []step
}

type step struct {
	slot     *slot
	failOpen bool
}

// Len is the number of attachments.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.steps)
}

// held is an instance whose handle_request said "next": it is kept until
// its handle_response ran.
type held struct {
	in       *instance
	slot     *slot
	failOpen bool
	reqCtx   uint32
}

// exchange is the state of one request through a chain, reused through a
// sync.Pool so that a request costs few allocations.
type exchange struct {
	r          *http.Request
	clientAddr string
	sourceAddr string
	features   uint32 // enabled for this request: the union over the guests
	responding bool   // handle_response phase
	bodyErr    error  // a request body problem that is not the guest's fault
	err        error  // failure of the response phase run while streaming

	reqBody     []byte
	reqBuffered bool // reqBody is the request body (read, or written by a guest)
	reqHanded   bool // reqBody went to next: never reuse it
	reqOff      int
	reqWritten  bool

	status       int
	respHeader   http.Header
	respTrailer  http.Header
	respBody     []byte
	respBuffered bool // respBody is the response body
	respTooLarge bool
	respOff      int
	respWritten  bool

	scratch []byte
	held    []held
	rw      respWriter
}

var exchanges = sync.Pool{New: func() any { return &exchange{respHeader: http.Header{}} }}

func getExchange(r *http.Request, clientAddr string) *exchange {
	ex := exchanges.Get().(*exchange)
	ex.r, ex.clientAddr = r, clientAddr
	return ex
}

// putExchange releases what a request still holds (only on a panic
// through next) and recycles the exchange.
func putExchange(ex *exchange) {
	for _, hd := range ex.held {
		hd.in.release()
	}
	if ex.reqHanded || cap(ex.reqBody) > 64<<10 {
		ex.reqBody = nil
	}
	if cap(ex.respBody) > 64<<10 {
		ex.respBody = nil
	}
	if cap(ex.scratch) > 64<<10 {
		ex.scratch = nil
	}
	clear(ex.respHeader)
	*ex = exchange{
		respHeader: ex.respHeader,
		reqBody:    ex.reqBody[:0],
		respBody:   ex.respBody[:0],
		scratch:    ex.scratch[:0],
		held:       ex.held[:0],
	}
	exchanges.Put(ex)
}

// beginCall resets what is per guest call: body read positions and the
// "first write replaces" rule.
func (ex *exchange) beginCall(in *instance) {
	in.ex = ex
	ex.reqOff, ex.respOff = 0, 0
	ex.reqWritten, ex.respWritten = false, false
}

func (ex *exchange) callRequest(in *instance) (next bool, reqCtx uint32, err error) {
	ex.beginCall(in)
	ex.features |= in.features
	err = in.call(in.hreq, in.stack[:])
	in.ex = nil
	r := in.stack[0]
	return uint32(r) != 0, uint32(r >> 32), err
}

func (ex *exchange) callResponse(in *instance, reqCtx uint32, isError bool) error {
	ex.beginCall(in)
	in.stack[0], in.stack[1] = uint64(reqCtx), 0
	if isError {
		in.stack[1] = 1
	}
	err := in.call(in.hresp, in.stack[:])
	in.ex = nil
	return err
}

// bufferRequest reads the request body (at most MaxBodyBytes) so that
// guests can read it and next still gets it.
func (ex *exchange) bufferRequest() {
	if ex.reqBuffered {
		return
	}
	ex.reqBuffered = true
	ex.reqBody = ex.reqBody[:0]
	body := ex.r.Body
	if body == nil || body == http.NoBody {
		return
	}
	if ex.r.ContentLength > MaxBodyBytes {
		ex.bodyErr = ErrBodyTooLarge
		panic(ErrBodyTooLarge)
	}
	buf := bytes.NewBuffer(ex.reqBody)
	n, err := buf.ReadFrom(io.LimitReader(body, MaxBodyBytes+1))
	ex.reqBody = buf.Bytes()
	var mbe *http.MaxBytesError
	switch {
	case n > MaxBodyBytes, errors.As(err, &mbe):
		ex.bodyErr = ErrBodyTooLarge
	case err != nil:
		ex.bodyErr = fmt.Errorf("plugins: read request body: %w", err)
	default:
		return
	}
	panic(ex.bodyErr)
}

// source is get_source_addr's "ip:port": the client IP the gateway resolved,
// with the TCP peer's port when the peer is that client.
func (ex *exchange) source() string {
	if ex.sourceAddr != "" {
		return ex.sourceAddr
	}
	host, port := ex.clientAddr, "0"
	if _, _, err := net.SplitHostPort(host); err == nil {
		ex.sourceAddr = host
		return host
	}
	if h, p, err := net.SplitHostPort(ex.r.RemoteAddr); err == nil {
		if host == "" {
			host = h
		}
		if h == host {
			port = p
		}
	}
	ex.sourceAddr = net.JoinHostPort(host, port)
	return ex.sourceAddr
}

// Serve runs the chain around next; see the package documentation of the
// contract (section 10). Errors are ErrFailure, ErrBusy or ErrBodyTooLarge
// (or a request body read error), never written to w.
func (c *Chain) Serve(w http.ResponseWriter, r *http.Request, clientAddr string, next http.Handler) error {
	if c.Len() == 0 {
		next.ServeHTTP(w, r)
		return nil
	}
	ex := getExchange(r, clientAddr)
	defer putExchange(ex)

	answered := false
	for i := range c.steps {
		st := &c.steps[i]
		s := st.slot
		if s.suspended() {
			if st.failOpen {
				continue
			}
			return ex.abort(ErrFailure)
		}
		in, err := s.acquire()
		if err != nil {
			if err == ErrBusy {
				return ex.abort(ErrBusy)
			}
			s.failed(fmt.Errorf("start instance: %w", err))
			if st.failOpen {
				continue
			}
			return ex.abort(ErrFailure)
		}
		next, reqCtx, err := ex.callRequest(in)
		if err != nil || ex.bodyErr != nil {
			in.close()
			if ex.bodyErr != nil {
				return ex.abort(ex.bodyErr)
			}
			s.failed(err)
			if st.failOpen {
				continue
			}
			return ex.abort(ErrFailure)
		}
		s.succeeded()
		if !next {
			in.release()
			answered = true
			break
		}
		ex.held = append(ex.held, held{in: in, slot: s, failOpen: st.failOpen, reqCtx: reqCtx})
	}

	if answered {
		// The guest's own answer: its status, headers and body, seen by the
		// handle_response of the guests before it.
		ex.respBuffered = true
		if err := ex.respond(); err != nil {
			return err
		}
		ex.commit(w, true)
		return nil
	}

	ex.handOverRequest()
	ex.rw = respWriter{ex: ex, w: w}
	next.ServeHTTP(&ex.rw, r)
	if ex.rw.hijacked {
		return nil // a protocol switch: the upgraded stream went by the guests
	}
	if ex.rw.discard {
		return ex.err // the response phase failed
	}
	if !ex.rw.wroteHeader {
		ex.rw.WriteHeader(http.StatusOK) // next wrote nothing: an empty 200
	}
	if ex.respBuffered {
		if ex.respTooLarge {
			return ex.abort(ErrFailure)
		}
		if err := ex.respond(); err != nil {
			return err
		}
		ex.commit(w, true)
		return nil
	}
	if ex.err != nil {
		return ex.err
	}
	ex.writeTrailers(w)
	return nil
}

// handOverRequest gives next the (possibly rewritten) buffered body, and
// starts the response afresh: the upstream's answer replaces anything a
// guest wrote before saying "next".
func (ex *exchange) handOverRequest() {
	if ex.reqBuffered {
		body := ex.reqBody
		ex.reqHanded = true
		r := ex.r
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		r.TransferEncoding = nil
		if r.Header.Get("Content-Length") != "" {
			r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		}
	}
	ex.status = 0
	ex.respBody = ex.respBody[:0]
	ex.respBuffered = ex.features&featureBufferResponse != 0
}

// respond runs handle_response of the held instances, last first. A failure
// of a failOpen attachment is skipped; any other fails the request, and the
// remaining guests are still called with is_error=1 so they can clean up.
func (ex *exchange) respond() error {
	ex.responding = true
	var failure error
	for j := len(ex.held) - 1; j >= 0; j-- {
		hd := ex.held[j]
		ex.held = ex.held[:j]
		err := ex.callResponse(hd.in, hd.reqCtx, failure != nil)
		if err != nil {
			hd.in.close()
			if failure == nil {
				hd.slot.failed(err)
				if !hd.failOpen {
					failure = ErrFailure
				}
			}
			continue
		}
		if failure == nil {
			hd.slot.succeeded()
		}
		hd.in.release()
	}
	return failure
}

// abort ends a request with err: guests that said "next" still get their
// handle_response, with is_error=1.
func (ex *exchange) abort(err error) error {
	ex.responding = true
	for j := len(ex.held) - 1; j >= 0; j-- {
		hd := ex.held[j]
		ex.held = ex.held[:j]
		if cerr := ex.callResponse(hd.in, hd.reqCtx, true); cerr != nil {
			hd.in.close()
			continue
		}
		hd.in.release()
	}
	return err
}

// commit writes the final status and headers (and the body when buffered) to w.
func (ex *exchange) commit(w http.ResponseWriter, withBody bool) {
	h := w.Header()
	for k, v := range ex.respHeader {
		h[k] = v
	}
	status := ex.status
	if status == 0 {
		status = http.StatusOK
	}
	// A HEAD answer and a 204 or 304 carry no body: their Content-Length,
	// if any, is the upstream's to give.
	noBody := ex.r.Method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified
	if withBody && !noBody {
		delete(h, "Transfer-Encoding")
		if len(ex.respTrailer) == 0 {
			h["Content-Length"] = []string{strconv.Itoa(len(ex.respBody))}
		} else {
			delete(h, "Content-Length")
		}
	}
	// Announce trailers before the header goes out, or the server may
	// frame the body with a Content-Length and drop them.
	for k := range ex.respTrailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(status)
	if withBody && !noBody && len(ex.respBody) > 0 {
		_, _ = w.Write(ex.respBody)
	}
	if withBody {
		ex.writeTrailers(w)
	}
}

// writeTrailers sends the response trailers guests set, after the body.
func (ex *exchange) writeTrailers(w http.ResponseWriter) {
	if len(ex.respTrailer) == 0 {
		return
	}
	h := w.Header()
	for k, v := range ex.respTrailer {
		h[http.TrailerPrefix+k] = v
	}
}

// respWriter is the ResponseWriter next writes to. Status and headers are
// held until handle_response ran. With buffer_response the body is
// buffered too; without, handle_response runs when the status arrives and
// the body then streams straight to the client.
type respWriter struct {
	ex          *exchange
	w           http.ResponseWriter
	wroteHeader bool
	discard     bool // the response phase failed: the error mapper answers instead
	hijacked    bool // switched protocols (101): next owns the connection
}

var (
	_ http.Flusher  = (*respWriter)(nil)
	_ http.Hijacker = (*respWriter)(nil)
)

// Hijack is next's protocol switch (a 101 to a WebSocket upgrade). The
// guests saw the handshake request; their handle_response runs now, on the
// 101, and what they set goes out with it, as do the headers already on w
// (the gateway's own). The upgraded stream then passes without them. When a
// guest fails there, the switch is refused and Serve returns the failure.
func (rw *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	ex := rw.ex
	rw.wroteHeader = true
	ex.status = http.StatusSwitchingProtocols
	if err := ex.respond(); err != nil {
		ex.err = err
		rw.discard = true // next's error answer is dropped: the error mapper answers
		return nil, nil, err
	}
	for k, v := range rw.w.Header() {
		if _, ok := ex.respHeader[k]; !ok {
			ex.respHeader[k] = v
		}
	}
	c, brw, err := http.NewResponseController(rw.w).Hijack()
	if err != nil {
		rw.wroteHeader = false // next answers the error (the guests are done)
		return nil, nil, err
	}
	rw.hijacked = true
	return c, brw, nil
}

func (rw *respWriter) Header() http.Header { return rw.ex.respHeader }

func (rw *respWriter) WriteHeader(code int) {
	if rw.wroteHeader || (code >= 100 && code < 200) {
		return // informational answers are not forwarded
	}
	rw.wroteHeader = true
	ex := rw.ex
	ex.status = code
	if ex.respBuffered {
		return
	}
	if err := ex.respond(); err != nil {
		ex.err = err
		rw.discard = true
		return
	}
	ex.commit(rw.w, false)
}

func (rw *respWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	ex := rw.ex
	if ex.respBuffered {
		if len(ex.respBody)+len(p) > MaxBodyBytes {
			ex.respTooLarge = true // keep reading the upstream; fail at the end
			return len(p), nil
		}
		ex.respBody = append(ex.respBody, p...)
		return len(p), nil
	}
	if rw.discard {
		return len(p), nil
	}
	return rw.w.Write(p)
}

func (rw *respWriter) Flush() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.ex.respBuffered || rw.discard {
		return
	}
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (rw *respWriter) Unwrap() http.ResponseWriter { return rw.w }
