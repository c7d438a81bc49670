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

func TestAppendStringsAndStringMapMatchEncodingJSON(t *testing.T) {
	slices := [][]string{nil, {}, {"a"}, {"b\"", "<&>", "é\xff"}}
	for _, ss := range slices {
		want, _ := json.Marshal(ss)
		if got := AppendStrings(nil, ss); !bytes.Equal(got, want) {
			t.Errorf("AppendStrings(%q) = %s, encoding/json %s", ss, got, want)
		}
	}
	many := map[string]string{}
	for i := range 40 {
		many[string(rune('a'+i%26))+string(rune('0'+i/26))] = "v"
	}
	maps := []map[string]string{nil, {}, {"b": "1", "a": "2", "A": "<3>", "é": "\u2028", "\xff": "x"}, many}
	for _, m := range maps {
		want, _ := json.Marshal(m)
		if got := AppendStringMap(nil, m); !bytes.Equal(got, want) {
			t.Errorf("AppendStringMap(%q) = %s, encoding/json %s", m, got, want)
		}
	}
}
