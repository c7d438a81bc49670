package scan

import (
	"bytes"
	"testing"
)

// The structural parsers read untrusted files: they must never panic, and
// the spans they return must lie inside the input.

func FuzzParseDotenv(f *testing.F) {
	f.Add([]byte("A=1\nexport DB_PASSWORD='p@ss w0rd'\n# c\nB=\"x\" # y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, e := range parseDotenv(data) {
			if e.valueOff < 0 || e.valueOff+len(e.value) > len(data) || !bytes.Equal(data[e.valueOff:e.valueOff+len(e.value)], e.value) {
				t.Fatalf("entry %q: value span outside input", e.key)
			}
		}
	})
}

func FuzzParseDBURL(f *testing.F) {
	f.Add([]byte("postgres://app:p@ss/w#rd:9!@db.internal:5432/orders"))
	f.Add([]byte("jdbc:postgresql://h/db?user=a&password=b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := parseDBURL(data)
		if ok && (c.passOff < 0 || c.passOff+len(c.password) > len(data) || !bytes.Equal(data[c.passOff:c.passOff+len(c.password)], c.password)) {
			t.Fatalf("password span outside input")
		}
		if m, ok := parseGoMySQLDSN(data); ok && !bytes.Equal(data[len(data)-len(m.password):], m.password) {
			t.Fatalf("mysql password is not the token's tail")
		}
	})
}

func FuzzParseK8sSecrets(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Secret\ndata:\n  password: aHVudGVyMg==\nstringData:\n  token: abc\n---\nkind: ConfigMap\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, e := range parseK8sSecrets(data) {
			if e.off < 0 || e.off > len(data) {
				t.Fatalf("entry %q: offset %d outside input", e.key, e.off)
			}
		}
	})
}

func FuzzScan(f *testing.F) {
	f.Add("a.go", []byte(`tok := "ghp_Zq3Tx9LmA7bKcR2vWn5YpE8sDf4Hj61x2y3z" // password = "q8Zr2Kx9Lm4Nv8Bt3Yp6"`))
	f.Add(".env", []byte("DB_PASSWORD=Zq9!xLm2#Kw\n"))
	f.Fuzz(func(t *testing.T, path string, data []byte) {
		for _, fd := range NewDetector(nil).Scan(path, data) {
			if fd.Line < 1 || len(fd.Fingerprint) != 32 {
				t.Fatalf("bad finding %+v", fd)
			}
		}
	})
}
