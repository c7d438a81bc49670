//go:build goexperiment.jsonv2

package server

// invalidUTF8 is what encoding/json, built on encoding/json/v2, writes for
// a byte of invalid UTF-8.
const invalidUTF8 = "\ufffd"
