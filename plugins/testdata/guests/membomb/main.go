//go:build wasip1

// Command membomb allocates without bound when the request has an
// X-Misbehave header; otherwise it passes the request on.
package main

import "gatehouse/plugins/guest"

var hoard [][]byte

func init() {
	guest.HandleRequest(func(req guest.Request, _ guest.Response) (bool, uint32) {
		if req.Header().Has("X-Misbehave") {
			for {
				b := make([]byte, 1<<20)
				b[len(b)-1] = 1
				hoard = append(hoard, b)
			}
		}
		return true, 0
	})
}

func main() {}
