# The old MSP leaves an Active Directory domain: find its accounts, take
# them out of every privileged group (found by SID, whatever the groups are
# called in this domain's language), disable them with a stamp, reset the
# passwords it knew (Administrator, service accounts), and rotate krbtgt
# twice, 10 hours apart. Values to fill in are in ad.vars.json.example.

runbook "ad-offboarding" {
  description = "Take an AD domain back from the previous IT provider"
}

variable "dc" {
  description = "The domain controller: ldaps://dc1.example.local or ldap://... (StartTLS)"
}
variable "ca_file" {
  description = "PEM file of the CA that signed the DC's LDAPS certificate"
}
variable "bind_dn" {
  description = "A domain admin of the new provider (not Administrator, whose password this runbook resets, and not the old provider's): switchover never disables, resets or strips the account it binds as"
}
variable "bind_password" {
  description = "That account's password"
  sensitive   = true
}
variable "old_provider_upn_suffix" {
  description = "The old provider's UPN domain, e.g. oldmsp.example"
}
variable "keep_accounts" {
  description = "Accounts that match but stay as they are (sAMAccountNames, UPNs or DNs)"
  type        = list(string)
  default     = []
}
variable "old_provider_principals" {
  description = "The old provider's groups, computers and accounts the UPN suffix does not find (names, DNs or SIDs)"
  type        = list(string)
  default     = []
}
variable "old_provider_domain_sids" {
  description = "The old provider's own domain SIDs (S-1-5-21-...), if it ran a domain of its own"
  type        = list(string)
  default     = []
}
variable "old_provider_mentions" {
  description = "Host names, share names and tools of the old provider that scripts and tasks in SYSVOL may name (default: the UPN suffix)"
  type        = list(string)
  default     = []
}
variable "trusted_principals" {
  description = "Who may keep dangerous rights besides the domain's defaults: the new provider's admins, the client's own (anyone else with such rights is reported)"
  type        = list(string)
  default     = []
}
variable "sysvol_path" {
  description = "Where SYSVOL can be read (a mount of \\\\DC\\SYSVOL); null: scripts and tasks are not searched"
  type        = string
  default     = null
}
variable "switch_started" {
  description = "When the switch began (RFC 3339): service accounts whose passwords were set before it are reported; null: 24 hours before each sweep"
  type        = string
  default     = null
}
variable "service_accounts" {
  description = "Service accounts whose passwords the old provider chose (sAMAccountNames)"
  type        = list(string)
  default     = []
}

plugin "ad" {
  server        = var.dc
  ca_file       = var.ca_file
  bind_dn       = var.bind_dn
  bind_password = var.bind_password
}

step "ad.inventory" "before" {}

# Read while planning (it changes nothing): the plan lists every account
# the steps below will change, for review.
step "ad.find_accounts" "found" {
  upn_suffix = var.old_provider_upn_suffix
  mentions   = var.old_provider_upn_suffix
  match      = "any"
  exclude    = concat([var.bind_dn], var.keep_accounts)
}

step "ad.remove_from_groups" "strip" {
  for_each   = step.found.outputs.accounts
  account    = each.value.dn
  privileged = true
}

step "ad.disable_account" "disable" {
  for_each   = step.found.outputs.accounts
  account    = each.value.dn
  stamp      = true
  depends_on = [step.strip]
}

step "ad.reset_password" "administrator" {
  account  = "Administrator"
  password = secret("ad/Administrator")
}

step "ad.reset_password" "service" {
  for_each = toset(var.service_accounts)
  account  = each.value
  password = secret("ad/${each.value}")
}

step "ad.rotate_krbtgt" "krbtgt" {
  wait       = "10h"
  depends_on = [step.administrator]
}

# Back doors the old provider can leave without an account of its own,
# read while planning like the accounts: the plan lists each, the old
# provider's are removed below, and the rest (rights of principals nobody
# listed, scripts in SYSVOL, old service passwords) are open items of the
# checklist with the command a person runs.
step "ad.find_persistence" "backdoors" {
  principals      = concat(var.old_provider_principals, [for a in step.found.outputs.accounts : a.sid])
  upn_suffix      = var.old_provider_upn_suffix
  old_domain_sids = var.old_provider_domain_sids
  trusted         = var.trusted_principals
  mentions        = var.old_provider_mentions
  sysvol_path     = var.sysvol_path
  since           = var.switch_started
  # Shadow credentials on admin accounts (Administrator's password the old
  # provider knew, and a key it planted survives the reset) are removed too.
  key_credentials = "privileged"
}

step "ad.remove_persistence" "backdoor" {
  for_each = step.backdoors.outputs.removable
  kind     = each.value.kind
  object   = each.value.object
  value    = each.value.value
}

step "core.manual" "service_configs" {
  instructions = "Put the new service account passwords (in the handover bundle) into the services that use them, then restart those services."
  confirm_by   = "the new provider's engineer"
  depends_on   = [step.service]
}
