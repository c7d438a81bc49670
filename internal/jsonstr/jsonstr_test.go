package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func marshal(t testing.TB, s string) []byte {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

func TestAppendMatchesEncodingJSON(t *testing.T) {
	tests := []string{
		"", "plain ascii", `quote " and \ backslash`, "<script>&amp;</script>",
		"tab\tnewline\nreturn\rbell\afeed\fback\b", "\x00\x01\x1f\x7f",
		"héllo wörld ✓", "line\u2028para\u2029end", "bad \xff utf-8 \xc3",
		"\xed\xa0\x80 surrogate", strings.Repeat("long plain ", 200),
	}
	for c := range 256 {
		tests = append(tests, string(rune(c)), "a"+string([]byte{byte(c)})+"z")
	}
	for _, s := range tests {
		if got, want := Append(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Errorf("Append(%q) = %s, encoding/json %s", s, got, want)
		}
	}
}

func TestAppendKeepsThePrefix(t *testing.T) {
	if got := string(Append([]byte(`{"k":`), "v<")); got != `{"k":"v\u003c"` {
		t.Fatalf("got %s", got)
	}
}

func FuzzAppendMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<&>", "\u2028", "\xff", "é\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Append(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}
