package relay

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Credentials are the relay's TLS material read from its files (the server certificate and key,
// the bundle of CAs whose client certificates are accepted), which Reload reads again while the
// relay serves (docs/nodes.md, "Rotating the relay's credentials"). Each new handshake takes the
// material in force when it starts (tls.Config.GetConfigForClient); connections established
// before a reload keep theirs and are not touched. New files that cannot be read or do not make
// a valid server certificate and CA bundle leave the material in force as it was.
type Credentials struct {
	CertFile, KeyFile, CAFile string

	mu      sync.Mutex // one Reload at a time
	current atomic.Pointer[material]
}

type material struct {
	config *tls.Config
	digest string // of the three files, as read: what the logs name
}

// LoadCredentials reads the files once; an error is the relay's start failing.
func LoadCredentials(certFile, keyFile, caFile string) (*Credentials, error) {
	c := &Credentials{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}
	if _, err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again and serves new handshakes from them. It answers the digest of
// the files now in force (the first 16 hex digits of SHA-256 over the three files) and whether
// they changed; on an error the material in force stays as it was.
func (c *Credentials) Reload() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next, err := c.read()
	if err != nil {
		return "", err
	}
	c.current.Store(next)
	return next.digest, nil
}

// Digest names the material in force (see Reload).
func (c *Credentials) Digest() string { return c.current.Load().digest }

func (c *Credentials) read() (*material, error) {
	certPEM, err := os.ReadFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	keyPEM, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("--client-ca: %w", err)
	}
	certificate, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--cert/--key: %w", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("--client-ca: no PEM certificate in " + c.CAFile)
	}
	sum := sha256.New()
	for _, data := range [][]byte{certPEM, keyPEM, caPEM} {
		sum.Write(data)
	}
	return &material{
		config: &tls.Config{
			Certificates: []tls.Certificate{certificate},
			ClientCAs:    clientCAs,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
			// No resumption: a session from before a reload would skip the new CA bundle's check
			// (the ticket keys are the base config's, kept across reloads).
			SessionTicketsDisabled: true,
		},
		digest: hex.EncodeToString(sum.Sum(nil))[:16],
	}, nil
}

// ServerConfig is the relay's tls.Config: each handshake gets the material in force then.
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.current.Load().config, nil
		},
	}
}
