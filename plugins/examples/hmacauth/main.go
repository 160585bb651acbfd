//go:build wasip1

// Command hmacauth is a Gatehouse plugin that lets a request through only
// when its X-Signature header is hex(HMAC-SHA256(secret, method + " " + path)),
// the secret being the attachment's config string. Otherwise it answers 401
// with a JSON body.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"gatehouse/plugins/guest"
)

var secret []byte

func init() {
	secret = guest.Config()
	guest.HandleRequest(func(req guest.Request, resp guest.Response) (bool, uint32) {
		path, _, _ := strings.Cut(req.URI(), "?")
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(req.Method() + " " + path))
		got, err := hex.DecodeString(req.Header().Get("X-Signature"))
		if err == nil && len(secret) > 0 && hmac.Equal(got, mac.Sum(nil)) {
			return true, 0
		}
		resp.SetStatusCode(401)
		resp.Header().Set("Content-Type", "application/json")
		resp.Body().WriteString(`{"error":"invalid signature"}`)
		return false, 0
	})
}

func main() {}
