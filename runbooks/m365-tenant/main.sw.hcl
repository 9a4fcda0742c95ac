# The old MSP leaves a Microsoft 365 tenant: find its users and guests,
# take them out of the directory roles, end their sessions, disable them,
# and reset the passwords of the accounts it knew. The persistence sweep
# removes what it could keep without an account (inbox rules forwarding
# mail to it, consents, Conditional Access exclusions, a cross-tenant
# trust, Temporary Access Passes) and lists the rest for a person. The
# partner relationships (GDAP/DAP) are removed by a person in the admin
# center.
# Values to fill in are in m365.vars.json.example; the secret goes in
# SWITCHOVER_VAR_client_secret.

runbook "m365-offboarding" {
  description = "Take a Microsoft 365 tenant back from the previous IT provider"
}

variable "tenant_id" {
  description = "The client's tenant ID: Entra admin center > Overview > Tenant ID"
}
variable "client_id" {
  description = "An app registration of the new provider with User.ReadWrite.All, Directory.ReadWrite.All, RoleManagement.ReadWrite.Directory"
}
variable "client_secret" {
  description = "A client secret of that app registration: Entra admin center > App registrations > the app > Certificates & secrets"
  sensitive   = true
}
variable "old_provider_name" {
  description = "How the old provider named the app secrets and certificates it made (matched in their display names)"
}
variable "old_provider_domains" {
  description = "The old provider's e-mail domains (its technicians' and guests' addresses), e.g. [\"oldmsp.example\"]"
  type        = list(string)
}
variable "old_provider_tenant_ids" {
  description = "The old provider's own tenant ID(s): its multi-tenant apps (RMM, backup, PSA) are removed"
  type        = list(string)
  default     = []
}
variable "known_accounts" {
  description = "Accounts whose passwords the old provider knew (UPNs), such as the break-glass admin"
  type        = list(string)
  default     = []
}
# For a test or a national cloud; the defaults are Microsoft's global cloud.
variable "authority_host" {
  description = "Login host: keep the default, except in a national cloud (e.g. https://login.microsoftonline.us/)"
  default     = "https://login.microsoftonline.com/"
}
variable "graph_endpoint" {
  description = "Graph endpoint: keep the default, except in a national cloud (e.g. https://graph.microsoft.us)"
  default     = "https://graph.microsoft.com"
}
variable "unverified_authority_host" {
  description = "LAB ONLY: sign in at an authority_host that is none of Microsoft's clouds (the client secret goes there; every plan names the host)"
  type        = bool
  default     = false
}
variable "ca_file" {
  description = "A CA to trust in addition to the system's (a TLS-inspecting proxy's); usually not needed"
  default     = null
}

plugin "entra" {
  tenant_id                 = var.tenant_id
  client_id                 = var.client_id
  client_secret             = var.client_secret
  authority_host            = var.authority_host
  graph_endpoint            = var.graph_endpoint
  unverified_authority_host = var.unverified_authority_host
  ca_file                   = var.ca_file
}

step "entra.inventory" "before" {}

# Read while planning: the plan lists every account it changes.
step "entra.find_users" "oldmsp" {
  domains = var.old_provider_domains
}

step "entra.remove_roles" "roles" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
}

step "entra.remove_groups" "groups" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
}

step "entra.remove_auth_methods" "mfa" {
  for_each = step.oldmsp.outputs.users
  user     = each.value.id
}

step "entra.revoke_sessions" "sessions" {
  for_each   = step.oldmsp.outputs.users
  user       = each.value.id
  depends_on = [step.roles]
}

step "entra.disable_user" "disable" {
  for_each   = step.oldmsp.outputs.users
  user       = each.value.id
  depends_on = [step.sessions]
}

step "entra.remove_guests" "guests" {
  domains    = var.old_provider_domains
  delete     = false
  depends_on = [step.disable]
}

# Read while planning: what the old provider keeps without an account. Its
# findings are removed below; the rest (a user forwarding to a private
# address, a federated domain, what only Exchange PowerShell reads) are
# open items of the checklist with the command a person runs.
step "entra.find_persistence" "backdoors" {
  domains    = var.old_provider_domains
  accounts   = [for u in step.oldmsp.outputs.users : u.id]
  tenant_ids = var.old_provider_tenant_ids
}

step "entra.remove_persistence" "backdoor" {
  for_each = step.backdoors.outputs.removable
  kind     = each.value.kind
  object   = each.value.object
  value    = each.value.value
}

step "entra.remove_service_principals" "apps" {
  owner_tenant_ids = var.old_provider_tenant_ids
  when             = length(var.old_provider_tenant_ids) > 0
}

step "entra.app_credentials" "secrets" {
  display_name_contains = var.old_provider_name
}

step "entra.reset_password" "known" {
  for_each     = toset(var.known_accounts)
  user         = each.value
  password     = secret("m365/${each.value}")
  force_change = false
}

step "core.manual" "partner_relationships" {
  instructions = "Microsoft 365 admin center > Settings > Partner relationships: remove the old provider's GDAP relationships and any DAP, and check Azure > Subscriptions > Access control for its foreign principals."
  confirm_by   = "the client's global administrator"
  depends_on   = [step.disable]
}
