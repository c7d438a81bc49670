// Package scan finds hardcoded credentials in files, directory trees and git
// history, so an organisation can inventory its static keys and replace each
// with a stint pattern.
//
// Detection is staged for speed and precision: an Aho-Corasick keyword
// prefilter runs over every byte once; a rule's regular expression runs only
// in a small window around one of its keyword hits; every candidate then
// passes an offline validator (checksum, charset and length, a parse of the
// key or token) and a placeholder filter. Nothing is ever sent to a provider.
//
// A Finding never holds the secret in the clear: only a redacted form and a
// keyed fingerprint leave the detector.
package scan
