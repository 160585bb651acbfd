//go:build wasip1

// Command readbody is a test plugin that buffers the request body (the
// host holds it, up to 8 MiB) and tells the upstream its length in
// X-Body-Len, so the gateway tests can see a buffering plugin at work.
package main

import (
	"strconv"

	"gatehouse/plugins/guest"
)

func init() {
	guest.EnableFeatures(guest.BufferRequest)
	guest.HandleRequest(func(req guest.Request, _ guest.Response) (bool, uint32) {
		req.Header().Set("X-Body-Len", strconv.Itoa(len(req.Body().ReadAll())))
		return true, 0
	})
}

func main() {}
