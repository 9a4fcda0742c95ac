// Package smtplab is an SMTP server for tests, on loopback: emersion's
// go-smtp (the server half of a well-kept Go SMTP library) with STARTTLS
// (its own CA), AUTH PLAIN only after STARTTLS, one user, and a mailbox
// the test reads. It refuses what a real submission server refuses: a
// login before STARTTLS, a wrong password, mail without a login.
package smtplab

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchover/switchover/internal/testing/testca"
)

// The lab's one user.
const (
	User     = "notices@newmsp.test"
	Password = "Smtp-Lab-Pw-1!"
)

// Message is one message the server accepted.
type Message struct {
	From    string
	To      []string
	Subject string
	Body    string
}

// Server is a running SMTP server.
type Server struct {
	Addr   string // 127.0.0.1:PORT
	CAFile string
	srv    *smtp.Server
	mu     sync.Mutex
	box    []Message
}

// New starts a server; dir holds its CA file.
func New(dir string) (*Server, error) {
	ca, err := testca.New("smtplab CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue([]string{"localhost"}, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	s := &Server{CAFile: filepath.Join(dir, "smtp-ca.pem")}
	if err := os.WriteFile(s.CAFile, ca.PEM, 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Addr = l.Addr().String()
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "localhost"
	s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
	go s.srv.Serve(l)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Messages are the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.box...)
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{s: b.s, c: c}, nil }

type session struct {
	s      *Server
	c      *smtp.Conn
	authed bool
	msg    Message
}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	if _, ok := x.c.TLSConnectionState(); !ok {
		return nil, errors.New("STARTTLS first")
	}
	return sasl.NewPlainServer(func(identity, user, pw string) error {
		if user != User || pw != Password {
			return errors.New("invalid credentials")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if !x.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	x.msg = Message{From: from}
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.msg.To = append(x.msg.To, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	x.msg.Subject, x.msg.Body = m.Header.Get("Subject"), strings.ReplaceAll(string(body), "\r\n", "\n")
	x.s.mu.Lock()
	x.s.box = append(x.s.box, x.msg)
	x.s.mu.Unlock()
	return nil
}

func (x *session) Reset()        { x.msg = Message{} }
func (x *session) Logout() error { return nil }
