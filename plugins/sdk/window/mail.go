package window

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/switchover/switchover/plugins/sdk"
)

// mailer sends the written notices: SMTP with STARTTLS (required, the
// certificate verified), AUTH PLAIN when a user is set.
type mailer struct {
	server, user, password, caFile, from string
	to                                   []string
}

func mailerFrom(a sdk.Values) *mailer {
	return &mailer{server: a.String("smtp_server"), user: a.String("smtp_username"), password: a.String("smtp_password"),
		caFile: a.String("smtp_ca_file"), from: a.String("mail_from"), to: a.Strings("mail_to")}
}

// message is the notice of event ("booked", "opened", "closed").
func message(event string, t Target, w Window, from string, to []string, now time.Time) string {
	subject := map[string]string{
		"booked": "Access window booked", "opened": "Access window open now", "closed": "Access window closed",
	}[event]
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s: %s, %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		from, strings.Join(to, ", "), subject, t.Describe(), w.Name, now.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "%s: %s.\r\n\r\n", subject, t.Describe())
	fmt.Fprintf(&b, "Window:      %s\r\nFrom:        %s\r\nUntil:       %s\r\n", w.Name, Stamp(w.Start), Stamp(w.End))
	fmt.Fprintf(&b, "Booked:      %s by %s\r\nApproved by: %s\r\n", Stamp(w.BookedAt), w.BookedBy, w.ApprovedBy)
	if w.Reason != "" {
		fmt.Fprintf(&b, "Short notice because: %s\r\n", w.Reason)
	}
	switch event {
	case "booked":
		b.WriteString("\r\nThe access stays off until the window opens, and the system itself ends it at the window's end.\r\n")
	case "opened":
		b.WriteString("\r\nThe access is open now and the system itself ends it at the window's end. The session is supervised.\r\n")
	case "closed":
		b.WriteString("\r\nThe access is off again. Reply to this message if work is left: a new window is booked in writing.\r\n")
	}
	return b.String()
}

// send delivers a notice; without smtp_server it does nothing (the plan
// said that the notices are left to a person).
func (m *mailer) send(ctx context.Context, event string, t Target, w Window) error {
	if m.server == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(m.server)
	if err != nil {
		host, port = m.server, "587"
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if m.caFile != "" {
		pem, err := os.ReadFile(m.caFile)
		if err != nil {
			return fmt.Errorf("smtp_ca_file: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("smtp_ca_file %s holds no PEM certificate", m.caFile)
		}
	}
	d := net.Dialer{Timeout: 20 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("cannot reach the SMTP server %s: %v", m.server, err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP server %s: %v", m.server, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return fmt.Errorf("the SMTP server %s does not offer STARTTLS: refused (the notice and the credentials would go in clear)", m.server)
	}
	if err := c.StartTLS(cfg); err != nil {
		return fmt.Errorf("STARTTLS with %s: %v", m.server, err)
	}
	if m.user != "" {
		if err := c.Auth(smtp.PlainAuth("", m.user, m.password, host)); err != nil {
			return fmt.Errorf("the SMTP server %s refused the login of %s: %v", m.server, m.user, err)
		}
	}
	if err := c.Mail(m.from); err != nil {
		return fmt.Errorf("SMTP MAIL FROM %s: %v", m.from, err)
	}
	for _, r := range m.to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %v", r, err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %v", err)
	}
	if _, err := wc.Write([]byte(message(event, t, w, m.from, m.to, time.Now()))); err != nil {
		return fmt.Errorf("sending the notice: %v", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("the SMTP server did not accept the notice: %v", err)
	}
	return c.Quit()
}
