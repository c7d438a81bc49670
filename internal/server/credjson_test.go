package server

import (
	"bytes"
	"encoding"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
)

// encodingJSON is what writeJSON writes for res.
func encodingJSON(res broker.CredentialResult) ([]byte, error) {
	var buf bytes.Buffer
	err := json.NewEncoder(&buf).Encode(res)
	return buf.Bytes(), err
}

// checkCredentialJSON holds appendCredentialResult to encoding/json.
func checkCredentialJSON(t *testing.T, res broker.CredentialResult) {
	t.Helper()
	want, werr := encodingJSON(res)
	got, ok := appendCredentialResult([]byte("prefix"), &res)
	switch {
	case werr != nil && ok:
		t.Fatalf("encoding/json fails (%v), appendCredentialResult gives %q", werr, got)
	case werr == nil && !ok:
		t.Fatalf("appendCredentialResult refuses what encoding/json encodes as %q", want)
	case werr == nil && !bytes.Equal(got[len("prefix"):], want):
		t.Fatalf("appendCredentialResult:\n got %q\nwant %q", got[len("prefix"):], want)
	}
}

var trickyStrings = []string{
	"",
	"plain",
	`quote " backslash \ slash /`,
	"<script>&amp;</script>",
	"\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
	"caf\u00e9 \u65e5\u672c \U0001F511",
	"line\u2028sep\u2029para",
	"\xff",
	"bad \xc3 utf8 \xed\xa0\x80 surrogate \xf4\x90\x80\x80 too big \xc0\xaf overlong",
	"truncated at the end \xe2\x80",
	"\ufffd already a replacement",
	"\xe2\x80\xa8\xe2\x80",
	strings.Repeat("AAAAC3NzaC1lZDI1NTE5+/=", 40),
}

func TestCredentialJSONMatchesEncodingJSON(t *testing.T) {
	base := sshResult()
	cases := map[string]broker.CredentialResult{
		"ssh":         base,
		"zero":        {},
		"nil map":     {LeaseID: "l", Credential: nil},
		"empty map":   {LeaseID: "l", Credential: core.Credential{}},
		"renewable":   {LeaseID: "l", Renewable: true, Credential: core.Credential{"a": "b"}},
		"many keys":   {Credential: manyKeys(40)},
		"key order":   {Credential: core.Credential{"b": "1", "a": "2", "B": "3", "_": "4", "a\x00": "5", "\xff": "6", "\ufffd": "7", "é": "8", "Z": "9", "": "10"}},
		"escaped key": {Credential: core.Credential{"<k>&\"\\\n": "v", "\u2028": "x"}},
	}
	for i, s := range trickyStrings {
		cases["string "+strconv.Itoa(i)] = broker.CredentialResult{LeaseID: s, ExpiresAt: base.ExpiresAt, Credential: core.Credential{s: s, "k": s}}
	}
	for i := range 0x100 {
		s := string([]byte{byte(i)})
		cases["byte "+strconv.Itoa(i)] = broker.CredentialResult{LeaseID: s, Credential: core.Credential{s: "x" + s + "y"}}
	}
	for name, tm := range map[string]time.Time{
		"unix zero":         time.Unix(0, 0),
		"local":             time.Date(2026, 1, 2, 3, 4, 5, 6, time.Local),
		"nanos trailing 0":  time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC),
		"one nano":          time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC),
		"monotonic":         time.Now(),
		"year 0":            time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		"year 9999":         time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"year 10000":        time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"year -1":           time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		"year -10000":       time.Date(-10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"east offset":       time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 5*3600+30*60)),
		"west offset":       time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -(9*3600+30*60+17))),
		"offset 23:59":      time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 23*3600+59*60)),
		"offset 24h":        time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 24*3600)),
		"offset -24h":       time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -24*3600)),
		"offset 100h":       time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 100*3600)),
		"offset seconds":    time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 59)),
		"zero offset named": time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("UTC+0", 0)),
	} {
		cases["time "+name] = broker.CredentialResult{LeaseID: "l", ExpiresAt: tm, Credential: core.Credential{"k": "v"}}
	}
	for name, res := range cases {
		t.Run(name, func(t *testing.T) { checkCredentialJSON(t, res) })
	}
}

func manyKeys(n int) core.Credential {
	c := core.Credential{}
	for i := range n {
		c["key"+strconv.Itoa(i*7919%1000)] = strconv.Itoa(i)
	}
	return c
}

// TestCredentialResultShape fails when broker.CredentialResult or
// core.Credential change in a way appendCredentialResult does not know.
func TestCredentialResultShape(t *testing.T) {
	rt := reflect.TypeFor[broker.CredentialResult]()
	want := []struct {
		name, tag string
		typ       reflect.Type
	}{
		{"LeaseID", `json:"lease_id"`, reflect.TypeFor[string]()},
		{"ExpiresAt", `json:"expires_at"`, reflect.TypeFor[time.Time]()},
		{"Renewable", `json:"renewable"`, reflect.TypeFor[bool]()},
		{"Credential", `json:"credential"`, reflect.TypeFor[core.Credential]()},
	}
	if rt.NumField() != len(want) {
		t.Fatalf("broker.CredentialResult has %d fields, appendCredentialResult knows %d", rt.NumField(), len(want))
	}
	for i, w := range want {
		f := rt.Field(i)
		if f.Name != w.name || string(f.Tag) != w.tag || f.Type != w.typ {
			t.Fatalf("field %d is %s %s %s, appendCredentialResult knows %s %s %s", i, f.Name, f.Type, f.Tag, w.name, w.typ, w.tag)
		}
	}
	if reflect.TypeFor[core.Credential]().Kind() != reflect.Map || reflect.TypeFor[core.Credential]().Key().Kind() != reflect.String {
		t.Fatal("core.Credential is no longer a map[string]string")
	}
	for _, typ := range []reflect.Type{rt, reflect.PointerTo(rt), reflect.TypeFor[core.Credential](), reflect.TypeFor[*core.Credential]()} {
		if typ.Implements(reflect.TypeFor[json.Marshaler]()) || typ.Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
			t.Fatalf("%s has its own JSON or text encoding", typ)
		}
	}
}

func TestWriteCredentialResult(t *testing.T) {
	for name, res := range map[string]broker.CredentialResult{
		"ssh":      sshResult(),
		"fallback": {LeaseID: "l", ExpiresAt: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) {
			want := httptest.NewRecorder()
			writeJSON(want, http.StatusOK, res)
			got := httptest.NewRecorder()
			writeCredentialResult(got, http.StatusOK, &res)
			if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Fatalf("got %d %q, want %d %q", got.Code, got.Body, want.Code, want.Body)
			}
			if n := got.Body.Len(); n > 0 {
				want.Header().Set("Content-Length", strconv.Itoa(n))
			}
			if !reflect.DeepEqual(got.Header(), want.Header()) {
				t.Fatalf("header %v, want %v", got.Header(), want.Header())
			}
		})
	}
}

// FuzzCredentialJSONMatchesEncodingJSON holds appendCredentialResult to
// json.NewEncoder(w).Encode for any strings, times and zones.
func FuzzCredentialJSONMatchesEncodingJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, leaseID string, sec, nsec int64, offset int, renewable, nilMap bool, k1, v1, k2, v2, k3, v3 string) {
		res := broker.CredentialResult{
			LeaseID:   leaseID,
			ExpiresAt: time.Unix(sec, nsec).In(time.FixedZone("Z", offset)),
			Renewable: renewable,
		}
		if !nilMap {
			res.Credential = core.Credential{k1: v1, k2: v2, k3: v3}
		}
		checkCredentialJSON(t, res)
	})
}
