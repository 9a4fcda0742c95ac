// Package state records a run: each step instance's status, attempts,
// timestamps, outputs, the plugin's latest checkpoint and the error, plus
// confirmations by people and encrypted secrets.
//
// A Backend persists records durably and in order; the Manager folds them
// into a Snapshot and batches concurrent appends into one durable write
// (group commit). Every backend must pass the suite in conformance.go.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/switchover/switchover/internal/audit"
)

// Status of a step instance.
type Status string

const (
	Pending Status = "pending"
	Running Status = "running"
	Done    Status = "done"
	Failed  Status = "failed"
	Skipped Status = "skipped"
	Waiting Status = "waiting" // for a person, or until a time (Until)
	// Gone: the read it was expanded from no longer finds its object
	// (deleted, or no longer matching); nothing was done for it.
	Gone Status = "gone"
)

// Record kinds.
const (
	KindRun        = "run"        // a new apply began
	KindStatus     = "status"     // an instance changed status
	KindCheckpoint = "checkpoint" // a plugin checkpoint
	KindConfirm    = "confirm"    // a person confirmed a manual step
	KindSecret     = "secret"     // a secret value was created or verified
	KindAuditHead  = "audit_head" // the audit trail's last hash, as an anchor
	KindOutput     = "output"     // a runbook output block's value after an apply
)

// Record is one entry of the state log.
type Record struct {
	Kind    string    `json:"k"`
	Time    time.Time `json:"t"`
	Address string    `json:"a,omitempty"`

	// status
	Status  Status          `json:"s,omitempty"`
	Attempt int             `json:"n,omitempty"`
	Summary string          `json:"sum,omitempty"`
	Error   string          `json:"err,omitempty"`
	Outputs json.RawMessage `json:"out,omitempty"`
	// SealedOutputs are the sensitive outputs, age-encrypted JSON.
	SealedOutputs []byte `json:"sout,omitempty"`
	// Until, with Waiting: the step goes on by itself at this time (not a
	// person's step).
	Until time.Time `json:"until,omitempty"`
	// Target, with Done: the system the step worked on (for the handover).
	Target string `json:"tgt,omitempty"`
	// Notes: what the plugin warned about, or left for a person, when the
	// instance reached this status (the checklist's open items).
	Notes []Note `json:"notes,omitempty"`

	// checkpoint (Sealed: Data is age-encrypted because it held a secret)
	Data   []byte `json:"d,omitempty"`
	Sealed bool   `json:"sealed,omitempty"`

	// confirm
	By   string `json:"by,omitempty"`
	Note string `json:"note,omitempty"`

	// run
	RunID       string `json:"run,omitempty"`
	RunbookHash string `json:"rbh,omitempty"`

	// secret: Name, the encrypted value, and whether it is now verified
	Name       string `json:"name,omitempty"`
	Ciphertext []byte `json:"ct,omitempty"`
	Verified   bool   `json:"ver,omitempty"`

	// audit head
	Seq  int64  `json:"seq,omitempty"`
	Hash string `json:"hash,omitempty"`
}

// Instance is the folded state of one step instance.
type Instance struct {
	Address       string
	Status        Status
	Attempts      int
	StartedAt     time.Time
	FinishedAt    time.Time
	UpdatedAt     time.Time
	Summary       string
	Error         string
	Outputs       json.RawMessage
	SealedOutputs []byte
	Checkpoint    []byte
	Sealed        bool
	Confirm       *Confirmation
	// Until: waiting until this time, not for a person (zero otherwise).
	Until time.Time
	// Target: the system the step worked on.
	Target string
	// Notes of its last outcome.
	Notes []Note
}

// Note is a plugin's warning, or what it left for a person, about one
// step instance.
type Note struct {
	// Kind is NoteWarning or NoteLeftForPerson.
	Kind    string `json:"kind"`
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
}

// Note kinds.
const (
	NoteWarning       = "warning"
	NoteLeftForPerson = "left_for_person"
)

// WaitsForPerson: the instance waits for a person's confirmation.
func (in *Instance) WaitsForPerson() bool { return in.Status == Waiting && in.Until.IsZero() }

// DueLater: the instance started and goes on by itself at Until (the
// second krbtgt reset, Connect's next sync); no person is waited for.
func (in *Instance) DueLater() bool { return in.Status == Waiting && !in.Until.IsZero() }

// Shown is the status as a person reads it: "due_later" for a timed wait,
// else Status.
func (in *Instance) Shown() string {
	if in.DueLater() {
		return "due_later"
	}
	return string(in.Status)
}

// Confirmation is a person's written, attributable confirmation.
type Confirmation struct {
	By   string
	Note string
	Time time.Time
}

// SecretVersion is one encrypted value of a secret.
type SecretVersion struct {
	Ciphertext []byte
	SetBy      string // the step instance that received it
	Created    time.Time
	Verified   bool
	VerifiedAt time.Time
}

// Secret is a named credential: its current (verified) value, and a pending
// one that a step is setting. The previous value is kept until the new one
// is verified.
type Secret struct {
	Name     string
	Current  *SecretVersion
	Pending  *SecretVersion
	Previous *SecretVersion
}

// Snapshot is the folded state.
type Snapshot struct {
	RunID       string
	RunbookHash string
	Records     int // how many records were folded
	// Serial counts the records that change the run (not audit anchors): a
	// saved plan is refused when it changed.
	Serial    int
	Instances map[string]*Instance
	Secrets   map[string]*Secret
	AuditSeq  int64 // the audit trail's anchored head
	AuditHash string
	// RunOutputs are the runbook's output values as the last apply
	// evaluated them (a sensitive one only sealed).
	RunOutputs map[string]*RunOutput
}

// RunOutput is one runbook output's value: cty JSON in clear, or sealed.
type RunOutput struct {
	Value  json.RawMessage
	Sealed []byte
	Time   time.Time
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{Instances: map[string]*Instance{}, Secrets: map[string]*Secret{}}
}

// Instance returns the named instance, creating a pending one.
func (s *Snapshot) instance(addr string) *Instance {
	in := s.Instances[addr]
	if in == nil {
		in = &Instance{Address: addr, Status: Pending}
		s.Instances[addr] = in
	}
	return in
}

// Apply folds one record into the snapshot.
func (s *Snapshot) Apply(r *Record) {
	s.Records++
	if r.Kind != KindAuditHead {
		s.Serial++
	}
	switch r.Kind {
	case KindRun:
		s.RunID, s.RunbookHash = r.RunID, r.RunbookHash
	case KindStatus:
		in := s.instance(r.Address)
		in.Status, in.UpdatedAt = r.Status, r.Time
		if r.Attempt > 0 {
			in.Attempts = r.Attempt
		}
		switch r.Status {
		case Running:
			in.StartedAt, in.Error = r.Time, ""
		case Done, Failed, Skipped, Gone:
			in.FinishedAt = r.Time
		}
		if r.Summary != "" {
			in.Summary = r.Summary
		}
		in.Error = r.Error
		in.Until = r.Until
		if r.Target != "" {
			in.Target = r.Target
		}
		in.Notes = r.Notes
		if r.Status == Done {
			in.Outputs, in.SealedOutputs = r.Outputs, r.SealedOutputs
		}
	case KindCheckpoint:
		in := s.instance(r.Address)
		in.Checkpoint, in.Sealed, in.UpdatedAt = r.Data, r.Sealed, r.Time
	case KindConfirm:
		in := s.instance(r.Address)
		in.Confirm = &Confirmation{By: r.By, Note: r.Note, Time: r.Time}
	case KindSecret:
		sec := s.Secrets[r.Name]
		if sec == nil {
			sec = &Secret{Name: r.Name}
			s.Secrets[r.Name] = sec
		}
		if r.Verified {
			if sec.Pending != nil {
				sec.Pending.Verified, sec.Pending.VerifiedAt = true, r.Time
				if sec.Current != nil {
					sec.Previous = sec.Current
				}
				sec.Current, sec.Pending = sec.Pending, nil
			}
			return
		}
		sec.Pending = &SecretVersion{Ciphertext: r.Ciphertext, SetBy: r.Address, Created: r.Time}
	case KindAuditHead:
		s.AuditSeq, s.AuditHash = r.Seq, r.Hash
	case KindOutput:
		if s.RunOutputs == nil {
			s.RunOutputs = map[string]*RunOutput{}
		}
		s.RunOutputs[r.Name] = &RunOutput{Value: r.Outputs, Sealed: r.SealedOutputs, Time: r.Time}
	}
}

// SortedInstances returns the instances by address.
func (s *Snapshot) SortedInstances() []*Instance {
	out := make([]*Instance, 0, len(s.Instances))
	for _, in := range s.Instances {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// LockInfo says who holds the lock.
type LockInfo struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Operation string    `json:"operation"`
	Since     time.Time `json:"since"`
	// Heartbeat: when the holder last said it is alive (a shared
	// backend's; zero for files).
	Heartbeat time.Time `json:"heartbeat,omitzero"`
}

// NewLockInfo describes this process.
func NewLockInfo(op string) LockInfo {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = fmt.Sprint(os.Getuid())
	}
	return LockInfo{ID: fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()), User: user, Host: host, PID: os.Getpid(), Operation: op, Since: time.Now().UTC()}
}

// LockedError says another process holds the lock.
type LockedError struct{ Holder LockInfo }

func (e *LockedError) Error() string {
	h := e.Holder
	return fmt.Sprintf("the state is locked by %s %s on %s (pid %d) since %s; if that process is gone, run `switchover unlock`",
		h.User, h.Operation, h.Host, h.PID, h.Since.Local().Format("2006-01-02 15:04:05"))
}

// ErrNotLocked is returned by Unlock when there is no lock.
var ErrNotLocked = errors.New("the state is not locked")

// Backend persists records, holds the lock, and keeps the audit journal
// (so that the trail lives, and is locked, with the state that anchors its
// head). Every backend must pass Conformance.
type Backend interface {
	// Append stores the records, in order, durably: when it returns nil they
	// survive a crash of the process or the machine.
	Append(recs []*Record) error
	// Records returns every stored record in order. A torn or corrupt tail
	// (from a crash in the middle of a write) is dropped, never returned.
	// After a successful Lock it returns what the store holds at that
	// moment (what was read before may be stale).
	Records() ([]*Record, error)
	// Lock takes the state's lock or returns *LockedError naming the
	// holder. A lock whose holder is gone (a process no longer running on
	// this host; a closed database session) is taken over. The lock is
	// scoped to this backend: Close releases it.
	Lock(info LockInfo) error
	// Unlock releases the lock held with id; force releases any lock.
	Unlock(id string, force bool) error
	// LockHolder says who holds the lock, if anyone.
	LockHolder() (LockInfo, bool, error)
	// Journal returns the audit journal kept with this state. Only the
	// lock holder appends to it; anyone may read it.
	Journal() (audit.Journal, error)
	// Close releases the lock this backend holds, if any, and closes it.
	Close() error
}

// Opener opens a backend for a workspace directory.
type Opener func(dir string) (Backend, error)
