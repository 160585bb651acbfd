//go:build wasip1

// Command conformance exercises every host function and feature flag of
// http_handler. The request header X-Case picks what it does; it reports
// what it saw in headers (to the upstream on the way in, to the client on
// the way out), so the host test can check each function from outside.
package main

import (
	"strconv"
	"strings"
	"unsafe"

	"gatehouse/plugins/guest"
)

//go:wasmimport http_handler get_uri
func rawGetURI(buf uint32, limit uint32) uint32

//go:wasmimport http_handler write_body
func rawWriteBody(kind uint32, ptr unsafe.Pointer, n uint32)

var startFeatures guest.Features

func init() {
	// Enabled during start: in force for every request of this instance.
	startFeatures = guest.EnableFeatures(0)
	guest.HandleRequest(handleRequest)
	guest.HandleResponse(handleResponse)
}

func handleRequest(req guest.Request, resp guest.Response) (bool, uint32) {
	h := req.Header()
	switch h.Get("X-Case") {
	case "deny":
		resp.SetStatusCode(418)
		resp.Header().Set("X-Denied", "yes")
		resp.Header().Add("X-Denied-Multi", "a")
		resp.Header().Add("X-Denied-Multi", "b")
		resp.Body().WriteString("denied ")
		resp.Body().WriteString("by guest")
		return false, 0
	case "oob":
		rawGetURI(0xFFFFFF00, 1024) // out of memory range: the host traps
		return true, 0
	case "bad-header":
		h.Set("X-Bad", "line\r\nInjected: 1") // the host refuses to split a header
		return true, 0
	case "trailer-without-feature":
		req.Trailers().Set("X-T", "1")
		return true, 0
	case "stream":
		// No buffer_response: the body streams, headers still change in handle_response.
		return true, 7
	case "write-without-buffer":
		return true, 8
	case "full":
	default:
		return true, 0
	}

	guest.Log(guest.LevelInfo, "conformance: full")
	guest.Log(guest.LevelNone, "never logged")
	h.Set("X-Log-Debug", strconv.FormatBool(guest.LogEnabled(guest.LevelDebug)))
	h.Set("X-Log-Error", strconv.FormatBool(guest.LogEnabled(guest.LevelError)))
	h.Set("X-Config", string(guest.Config()))
	h.Set("X-Start-Features", strconv.Itoa(int(startFeatures)))
	h.Set("X-Features", strconv.Itoa(int(guest.EnableFeatures(guest.BufferRequest|guest.BufferResponse|guest.Trailers))))
	h.Set("X-Method", req.Method())
	h.Set("X-URI", req.URI())
	h.Set("X-Proto", req.ProtocolVersion())
	h.Set("X-Source", req.SourceAddr())
	h.Set("X-Multi-Seen", strings.Join(h.Values("x-multi"), "|"))
	h.Set("X-Has-Missing", strconv.FormatBool(h.Has("X-Missing")))
	h.Set("X-Host-Seen", h.Get("Host"))
	names := h.Names()
	h.Set("X-Names-Seen", strings.Join(names, ","))
	h.Add("X-Added", "a")
	h.Add("X-Added", "b")
	h.Remove("X-Remove-Me")
	req.SetMethod("PUT")
	req.SetURI("/rewritten/path?q=1")
	// Buffered request body: read it (in two reads), then replace it.
	var body []byte
	chunk := make([]byte, 3)
	for {
		n, eof := req.Body().Read(chunk)
		body = append(body, chunk[:n]...)
		if eof {
			break
		}
	}
	h.Set("X-Body-Seen", string(body))
	req.Body().WriteString("rewritten:")
	req.Body().Write(body)
	req.Trailers().Set("X-Req-Trailer", "rt")
	h.Set("X-Req-Trailer-Seen", req.Trailers().Get("X-Req-Trailer"))
	// A response header set before next survives next's own headers.
	resp.Header().Set("X-Early", "set-in-request")
	return true, 42
}

func handleResponse(reqCtx uint32, req guest.Request, resp guest.Response, isError bool) {
	h := resp.Header()
	h.Set("X-Resp-Ctx", strconv.Itoa(int(reqCtx)))
	h.Set("X-Is-Error", strconv.FormatBool(isError))
	switch reqCtx {
	case 7: // stream
		h.Set("X-Stream", "yes")
		h.Set("X-Upstream-Status", strconv.Itoa(resp.StatusCode()))
		chunk := make([]byte, 16)
		n, eof := resp.Body().Read(chunk)
		h.Set("X-Resp-Body-Read", strconv.Itoa(n)+"/"+strconv.FormatBool(eof))
		return
	case 8: // write-without-buffer
		rawWriteBody(1, unsafe.Pointer(unsafe.StringData("x")), 1)
		return
	case 42:
	default:
		return
	}
	h.Set("X-Upstream-Status", strconv.Itoa(resp.StatusCode()))
	h.Set("X-Up-Seen", h.Get("X-Up"))
	h.Set("X-Resp-Names", strings.Join(resp.Header().Names(), ","))
	h.Remove("X-Remove-Resp")
	h.Add("X-Resp-Added", "1")
	h.Add("X-Resp-Added", "2")
	h.Set("X-Req-Method-After", req.Method())
	resp.SetStatusCode(201)
	body := resp.Body().ReadAll()
	resp.Body().WriteString("wrapped(")
	resp.Body().Write(body)
	resp.Body().WriteString(")")
	resp.Trailers().Set("X-Resp-Trailer", "done")
}

func main() {}
