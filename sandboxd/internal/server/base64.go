package server

import "encoding/base64"

// base64Decode decodes standard base64 (Python's b64encode), padding optional.
func base64Decode(s string) ([]byte, error) {
	if data, err := base64.StdEncoding.DecodeString(s); err == nil {
		return data, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}
