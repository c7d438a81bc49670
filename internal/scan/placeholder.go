package scan

import (
	"bytes"
	"math"
)

// placeholderMarks are substrings that mark a value as documentation or a
// template rather than a credential. They are compared in lower case.
var placeholderMarks = [][]byte{
	[]byte("xxxx"), []byte("..."), []byte("…"), []byte("<"), []byte(">"),
	[]byte("${"), []byte("{{"), []byte("$("), []byte("%s"), []byte("****"),
	[]byte("changeme"), []byte("change_me"), []byte("change-me"), []byte("changeit"),
	[]byte("example"), []byte("placeholder"), []byte("your_"), []byte("your-"),
	[]byte("yourkey"), []byte("yourtoken"), []byte("yoursecret"), []byte("yourpassword"),
	[]byte("redacted"), []byte("dummy"), []byte("sample"), []byte("replace"),
	[]byte("insert"), []byte("notreal"), []byte("not-real"), []byte("not_real"),
	[]byte("12345678"), []byte("abcdefgh"), []byte("00000000"),
}

// placeholderWords are whole values that are never credentials.
var placeholderWords = map[string]bool{
	"password": true, "secret": true, "token": true, "admin": true, "root": true,
	"test": true, "none": true, "null": true, "nil": true, "true": true, "false": true,
	"undefined": true, "string": true, "required": true, "optional": true,
	"passw0rd": true, "p@ssw0rd": true, "letmein": true, "hunter2": true,
}

// isPlaceholder reports whether v is a known placeholder shape: a template
// variable, a documentation marker, or a run of one character.
func isPlaceholder(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	var buf [256]byte
	l := buf[:0]
	if len(v) > len(buf) {
		l = make([]byte, 0, len(v))
	}
	for _, c := range v {
		l = append(l, lower(c))
	}
	for _, m := range placeholderMarks {
		if bytes.Contains(l, m) {
			return true
		}
	}
	if placeholderWords[string(l)] {
		return true
	}
	if v[0] == '$' || v[0] == '%' {
		return true // $VAR, %ENV%
	}
	same := true
	for _, c := range l[1:] {
		if c != l[0] {
			same = false
			break
		}
	}
	return same
}

// entropy is the Shannon entropy of v in bits per byte.
func entropy(v []byte) float64 {
	if len(v) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range v {
		counts[c]++
	}
	n := float64(len(v))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
