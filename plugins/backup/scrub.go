package backup

import (
	"context"
	"net/url"
	"strings"

	"github.com/switchover/switchover/plugins/sdk"
)

// displayRepo is the repository as restic prints it: a password in a URL
// (rest:https://user:PASS@host/, the only way restic 0.14 takes REST
// credentials) shown as ***.
func displayRepo(repo string) string {
	scheme, rest, ok := strings.Cut(repo, "://")
	if !ok {
		return repo
	}
	hostEnd := strings.IndexAny(rest, "/?#")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	at := strings.LastIndex(rest[:hostEnd], "@")
	if at < 0 {
		return repo
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return repo
	}
	return scheme + "://" + user + ":***@" + rest[at+1:]
}

// urlPassword is the password inside a repository URL, or "".
func urlPassword(repo string) string {
	_, rest, ok := strings.Cut(repo, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// scrubber removes the repository URL's password from text, in the forms
// a message may show it: as written, unescaped, and escaped again.
func (s *settings) scrubber() *strings.Replacer {
	pw := urlPassword(s.repo)
	if pw == "" {
		return strings.NewReplacer(s.repo, displayRepo(s.repo))
	}
	pairs := []string{s.repo, displayRepo(s.repo)}
	forms := map[string]bool{pw: true}
	if u, err := url.PathUnescape(pw); err == nil {
		forms[u] = true
		forms[url.QueryEscape(u)] = true
		forms[url.PathEscape(u)] = true
		forms[url.UserPassword("", u).String()[1:]] = true
	}
	for f := range forms {
		if len(f) >= 3 {
			pairs = append(pairs, f, "***")
		}
	}
	return strings.NewReplacer(pairs...)
}

// scrubbed wraps an action so that nothing it says (summaries, details,
// errors, warnings, its target) carries the repository URL's password.
func (p *plugin) scrubbed(a *sdk.Action) *sdk.Action {
	plan, apply := a.PlanFunc, a.ApplyFunc
	a.PlanFunc = func(ctx context.Context, req *sdk.PlanRequest) *sdk.PlanResponse {
		r := plan(ctx, req)
		if r != nil && p.s != nil {
			p.s.scrubPlan(r)
		}
		return r
	}
	a.ApplyFunc = func(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) *sdk.ApplyResponse {
		r := apply(ctx, req, scrubEvents{ev, p.s})
		if r != nil && p.s != nil {
			rep := p.s.scrubber()
			r.Summary = rep.Replace(r.Summary)
			scrubDiags(rep, r.Diagnostics)
		}
		return r
	}
	return a
}

func (s *settings) scrubPlan(r *sdk.PlanResponse) {
	rep := s.scrubber()
	r.Summary, r.Target = rep.Replace(r.Summary), rep.Replace(r.Target)
	for i := range r.Details {
		r.Details[i] = rep.Replace(r.Details[i])
	}
	scrubDiags(rep, r.Diagnostics)
}

func scrubDiags(rep *strings.Replacer, ds sdk.Diagnostics) {
	for i := range ds {
		ds[i].Summary, ds[i].Detail = rep.Replace(ds[i].Summary), rep.Replace(ds[i].Detail)
	}
}

// scrubEvents scrubs progress lines.
type scrubEvents struct {
	sdk.Events
	s *settings
}

func (e scrubEvents) Log(msg string) {
	if e.s != nil {
		msg = e.s.scrubber().Replace(msg)
	}
	e.Events.Log(msg)
}
