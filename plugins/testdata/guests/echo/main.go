//go:build wasip1

// Command echo copies the request's X-Echo header into the response, going
// through reqCtx and guest memory, so tests can see that concurrent
// requests never mix.
package main

import (
	"strconv"

	"gatehouse/plugins/guest"
)

var (
	pending = map[uint32]string{}
	nextID  uint32
)

func init() {
	guest.HandleRequest(func(req guest.Request, _ guest.Response) (bool, uint32) {
		nextID++
		pending[nextID] = req.Header().Get("X-Echo")
		return true, nextID
	})
	guest.HandleResponse(func(reqCtx uint32, _ guest.Request, resp guest.Response, _ bool) {
		resp.Header().Set("X-Echo", pending[reqCtx])
		resp.Header().Set("X-Echo-Ctx", strconv.Itoa(int(reqCtx)))
		resp.Header().Set("X-Echo-Config", string(guest.Config()))
		delete(pending, reqCtx)
	})
}

func main() {}
