package audit

// Event is the kind of an audit entry. The names are part of the trail's
// format (tools read them): add new ones, never rename.
type Event string

const (
	EvPlan                 Event = "plan"
	EvPlanRefused          Event = "plan_refused"
	EvApplyApproved        Event = "apply_approved"
	EvApplyDeclined        Event = "apply_declined"
	EvApplyFinished        Event = "apply_finished"
	EvStepStarted          Event = "step_started"
	EvStepDone             Event = "step_done"
	EvStepFailed           Event = "step_failed"
	EvStepSkipped          Event = "step_skipped"
	EvStepWaiting          Event = "step_waiting"
	EvStepReplanned        Event = "step_replanned"
	EvStepGone             Event = "step_gone"
	EvDriftFound           Event = "drift_found"
	EvPluginWarning        Event = "plugin_warning"
	EvIdentityCreated      Event = "identity_created"
	EvSecretCreated        Event = "secret_created"
	EvSecretVerified       Event = "secret_verified"
	EvSecretShown          Event = "secret_shown"
	EvConfirmed            Event = "confirmed"
	EvUnlocked             Event = "unlocked"
	EvUnanchoredLinesFound Event = "unanchored_lines_found"
	EvHandoverMade         Event = "handover_bundle_made"
	EvHandoverReceipt      Event = "handover_received"
)
