package handover

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/switchover/switchover/internal/secrets"
)

// A bundle is a tar file of parts, each encrypted with age to the new
// provider's keys on its own, and a manifest (also encrypted) with each
// part's SHA-256 and size. Encrypting the parts one by one lets the
// opener name the part that was damaged; the manifest catches a part
// swapped for another that decrypts.

// ManifestName is the manifest's name in the bundle.
const ManifestName = "MANIFEST.json"

// Part is one file of the bundle.
type Part struct {
	Name string
	Data []byte
}

// Manifest lists the parts.
type Manifest struct {
	FormatVersion int            `json:"format_version"`
	Created       time.Time      `json:"created"`
	Runbook       string         `json:"runbook"`
	RunbookHash   string         `json:"runbook_hash"`
	AuditHead     string         `json:"audit_head"`
	Parts         []ManifestPart `json:"parts"`
	// Signer is the fingerprint of the key whose signature of the manifest
	// verified ("" when the bundle is unsigned or the signature is
	// wrong); set by OpenBundle, not stored.
	Signer string `json:"-"`
}

// verifySignature is the signer's fingerprint when sig is a valid
// signature of the manifest m, else "".
func verifySignature(sig, m []byte) string {
	var s signature
	if sig == nil || json.Unmarshal(sig, &s) != nil || len(s.PublicKey) != ed25519.PublicKeySize {
		return ""
	}
	if !ed25519.Verify(ed25519.PublicKey(s.PublicKey), signedManifest(m), s.Signature) {
		return ""
	}
	return Fingerprint(ed25519.PublicKey(s.PublicKey))
}

// ManifestPart is one part's name, size and SHA-256.
type ManifestPart struct {
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// MakeBundle encrypts the parts and the manifest m (its Parts filled in
// here) to recipients and returns the bundle file.
func MakeBundle(m Manifest, parts []Part, recipients []age.Recipient, signer ed25519.PrivateKey) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no recipient: give the new provider's age or SSH public key")
	}
	m.FormatVersion = 1
	m.Parts = nil
	for _, p := range parts {
		if p.Name == ManifestName || strings.Contains(p.Name, "..") || strings.HasPrefix(p.Name, "/") {
			return nil, fmt.Errorf("invalid part name %q", p.Name)
		}
		m.Parts = append(m.Parts, ManifestPart{Name: p.Name, Size: len(p.Data), SHA256: sum(p.Data)})
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sig, err := signatureEntry(mb, signer)
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: SignatureName, Mode: 0o644, Size: int64(len(sig)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(sig); err != nil {
		return nil, err
	}
	for _, p := range append([]Part{{Name: ManifestName, Data: mb}}, parts...) {
		ct, err := secrets.Encrypt(p.Data, recipients...)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: p.Name + ".age", Mode: 0o600, Size: int64(len(ct)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(ct); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SignatureName is the bundle's signature entry (in clear: it reveals
// only the signer's public key).
const SignatureName = "SIGNATURE.json"

// signature is the workspace's Ed25519 signature of the manifest.
type signature struct {
	PublicKey []byte `json:"public_key"`
	Signature []byte `json:"signature"`
}

// Fingerprint names a signing key for reading out: SHA256:base64 of the
// public key, as ssh-keygen shows keys.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// SignBundle adds the signer's signature of the bundle's manifest.
func signatureEntry(manifest []byte, key ed25519.PrivateKey) ([]byte, error) {
	return json.Marshal(signature{PublicKey: key.Public().(ed25519.PublicKey), Signature: ed25519.Sign(key, signedManifest(manifest))})
}

// signedManifest is what is signed: the manifest, under a context of its own.
func signedManifest(m []byte) []byte {
	return append([]byte("switchover handover bundle manifest v1\x00"), m...)
}

// ErrNotForIdentity: the identity opens nothing in the bundle.
var ErrNotForIdentity = errors.New("the bundle is not encrypted to this identity")

// OpenBundle decrypts a bundle and checks every part against the manifest.
// It returns the parts that decrypted and matched, and one problem per part
// that did not (named), or an error when nothing can be read.
func OpenBundle(data []byte, id age.Identity) (*Manifest, map[string][]byte, []string, error) {
	var sig []byte
	enc := map[string][]byte{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("the bundle is not a readable bundle file (tar: %v)", err)
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<31))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("reading %s: %v", h.Name, err)
		}
		if h.Name == SignatureName {
			if sig != nil {
				return nil, nil, nil, fmt.Errorf("the bundle holds %s twice", SignatureName)
			}
			sig = b
			continue
		}
		name := strings.TrimSuffix(h.Name, ".age")
		if _, dup := enc[name]; dup {
			return nil, nil, nil, fmt.Errorf("the bundle holds %s twice", name)
		}
		enc[name] = b
		order = append(order, name)
	}
	mct, ok := enc[ManifestName]
	if !ok {
		return nil, nil, nil, fmt.Errorf("the bundle has no manifest")
	}
	mb, err := secrets.Decrypt(mct, id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, nil, nil, ErrNotForIdentity
		}
		return nil, nil, nil, fmt.Errorf("the manifest cannot be decrypted (it was changed or damaged): %v", err)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, nil, nil, fmt.Errorf("the manifest is not readable: %v", err)
	}
	m.Signer = verifySignature(sig, mb)
	parts := map[string][]byte{}
	var problems []string
	listed := map[string]bool{}
	for _, mp := range m.Parts {
		listed[mp.Name] = true
		ct, ok := enc[mp.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: listed in the manifest, missing from the bundle", mp.Name))
			continue
		}
		pt, err := secrets.Decrypt(ct, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot be decrypted: it was changed or damaged (%v)", mp.Name, err))
			continue
		}
		if got := sum(pt); got != mp.SHA256 || len(pt) != mp.Size {
			problems = append(problems, fmt.Sprintf("%s: does not match the manifest (sha256 %s, %d bytes; the manifest says %s, %d bytes): swapped or changed", mp.Name, got, len(pt), mp.SHA256, mp.Size))
			continue
		}
		parts[mp.Name] = pt
	}
	for _, n := range order {
		if n != ManifestName && !listed[n] {
			problems = append(problems, fmt.Sprintf("%s: in the bundle, not in the manifest: added", n))
		}
	}
	sort.Strings(problems)
	return &m, parts, problems, nil
}
