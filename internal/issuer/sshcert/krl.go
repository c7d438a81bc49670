package sshcert

import (
	"encoding/binary"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// KRL is an OpenSSH key revocation list (PROTOCOL.krl), the file sshd
// reads through RevokedKeys and `ssh-keygen -Q` checks against. stint
// writes only what it needs: certificate serials per CA. The list is
// unsigned; it is served over the same channel as the CA key.
type KRL struct {
	// Version increases whenever the list changes.
	Version   uint64
	Generated time.Time
	Comment   string
	CAs       []KRLCA
}

// KRLCA revokes certificates of one CA by serial.
type KRLCA struct {
	Key     ssh.PublicKey
	Serials []uint64
}

// Section and record types from PROTOCOL.krl.
const (
	krlMagic               = 0x5353484b524c0a00 // "SSHKRL\n\0"
	krlFormatVersion       = 1
	krlSectionCertificates = 1
	krlCertSerialList      = 0x20
)

// Marshal encodes the list. Serials are written sorted and without
// duplicates, as ssh-keygen writes them.
func (k KRL) Marshal() []byte {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, krlMagic)
	b = binary.BigEndian.AppendUint32(b, krlFormatVersion)
	b = binary.BigEndian.AppendUint64(b, k.Version)
	b = binary.BigEndian.AppendUint64(b, unixSeconds(k.Generated))
	b = binary.BigEndian.AppendUint64(b, 0) // flags: none defined
	b = appendString(b, nil)                // reserved
	b = appendString(b, []byte(k.Comment))
	for _, ca := range k.CAs {
		serials := slices.Clone(ca.Serials)
		slices.Sort(serials)
		serials = slices.Compact(serials)
		serials = slices.DeleteFunc(serials, func(s uint64) bool { return s == 0 })
		if len(serials) == 0 {
			continue
		}
		var list []byte
		for _, s := range serials {
			list = binary.BigEndian.AppendUint64(list, s)
		}
		var sec []byte
		sec = appendString(sec, ca.Key.Marshal()) // ca_key
		sec = appendString(sec, nil)              // reserved
		sec = append(sec, krlCertSerialList)
		sec = appendString(sec, list)
		b = append(b, krlSectionCertificates)
		b = appendString(b, sec)
	}
	return b
}

// appendString appends an SSH wire string: uint32 length, then the bytes.
func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
