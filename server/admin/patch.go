package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"gatehouse"
)

// maxCopyGrowth bounds how much a JSON Patch "copy" may grow a document, so a
// small patch cannot build a huge entity.
const maxCopyGrowth = 1 << 20

// applyPatch applies a PATCH body to the entity's current JSON. The media
// type picks RFC 6902 (application/json-patch+json) or RFC 7396
// (application/merge-patch+json); with any other type the body's shape
// decides: an array is a JSON Patch, anything else a merge patch.
func applyPatch(contentType string, doc, patch []byte) (out []byte, err error) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(patch)
	if len(trimmed) == 0 {
		return nil, gatehouse.Invalid("", "empty patch")
	}
	if !json.Valid(trimmed) {
		return nil, gatehouse.Invalid("", "patch is not valid JSON")
	}
	jsonPatch := false
	switch mediaType {
	case "application/json-patch+json":
		jsonPatch = true
	case "application/merge-patch+json":
	default:
		jsonPatch = trimmed[0] == '['
	}

	// The library is fed client bytes; a panic in it must not take the
	// connection down or look like a server fault.
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, gatehouse.Invalid("", "patch could not be applied")
		}
	}()

	if !jsonPatch {
		out, err = jsonpatch.MergePatch(doc, trimmed)
		if err != nil {
			return nil, gatehouse.Invalid("", "merge patch could not be applied")
		}
		return out, nil
	}
	if trimmed[0] != '[' {
		return nil, gatehouse.Invalid("", "a JSON Patch must be an array of operations")
	}
	ops, err := jsonpatch.DecodePatch(trimmed)
	if err != nil {
		return nil, gatehouse.Invalid("", "malformed JSON Patch: %s", patchErrMessage(err))
	}
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = maxCopyGrowth
	opts.SupportNegativeIndices = false
	out, err = ops.ApplyWithOptions(doc, opts)
	if err != nil {
		return nil, gatehouse.Invalid("", "JSON Patch could not be applied: %s", patchErrMessage(err))
	}
	return out, nil
}

// patchErrMessage keeps the library's explanation (it names the failing
// path) but bounds its length, since it may quote client input.
func patchErrMessage(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return msg
}

// patchEntity marshals current, applies the request's patch to it and
// decodes the result with decode on top of the entity's defaults, so a
// removed field takes its default.
func patchEntity(contentType string, body []byte, current any, decode func([]byte) error) error {
	doc, err := json.Marshal(current)
	if err != nil {
		return fmt.Errorf("marshal entity: %w", err)
	}
	patched, err := applyPatch(contentType, doc, body)
	if err != nil {
		return err
	}
	return decode(patched)
}

// into decodes one JSON object on top of v, strictly (decodeObject).
func into(v any, extra ...string) func([]byte) error {
	return func(data []byte) error { return decodeObject(data, v, "", extra...) }
}

// putID is the id a PUT writes: the path's. A body may repeat it, but a
// body naming another id is a 400 naming field: ids cannot be changed.
func putID(field, body, path string) (string, error) {
	if body != "" && body != path {
		return "", gatehouse.Invalid(field, "cannot be changed: the path names %q", path)
	}
	return path, nil
}

// sameID refuses a patch whose result changes (or removes) the id.
func sameID(field, patched, cur string) error {
	if patched != cur {
		return gatehouse.Invalid(field, "cannot be changed: it is %q", cur)
	}
	return nil
}
