# The whole switch of a typical small business from the old MSP to the new
# one: Active Directory synced to Entra ID (Microsoft 365), a few Linux
# servers or a NAS, two SaaS tools (a PSA over SCIM, an RMM over its API),
# restic backups, and what only a person can do: the registrar and DNS,
# the firewall and VPN, the remote-management agents, the contracts, and
# the written handover protocol.
#
# It uses the other curated runbooks as modules (each in its own
# namespace: module.ad.step.disable, ...); `switchover init DIR -from
# full-switch` copies them into DIR/modules.

runbook "full-switch" {
  client       = "Acme Bakery GmbH"
  old_provider = "OldMSP GmbH"
  new_provider = "NewMSP AG"
  description  = "The whole switch: servers, AD, Microsoft 365, SaaS tools, backups, and the person's steps"
}

# --- The old provider -------------------------------------------------------

variable "old_provider_domain" {
  description = "The old provider's e-mail and UPN domain, e.g. oldmsp.example (its technicians' accounts, guests and API tokens are found by it)"
}
variable "old_provider_name" {
  description = "How the old provider names what it made (app secrets, certificates), matched in display names, e.g. OldMSP"
}
variable "old_provider_mentions" {
  description = "Other strings that name the old provider in scripts, jobs and units on the servers (its hosts, tools, short name), besides its domain, e.g. [\"oldmsp\"]"
  type        = list(string)
  default     = []
}
variable "old_provider_tenant_ids" {
  description = "The old provider's own Entra tenant ID(s): its multi-tenant apps (RMM, backup, PSA) are removed from the client's tenant"
  type        = list(string)
  default     = []
}

# --- Linux servers and the NAS (ssh) ----------------------------------------

variable "servers" {
  description = "The servers and NAS boxes: name => { address = \"10.0.0.5\", port = 22 } (port may be left out)"
  type = map(object({
    address = string
    port    = optional(number, 22)
  }))
}
variable "ssh_private_key_file" {
  description = "The new provider's SSH private key, authorized for root on every server"
}
variable "ssh_known_hosts" {
  description = "A known_hosts file with every server's host key (ssh-keyscan, each fingerprint checked on the console)"
}

# --- Active Directory (ldap) ------------------------------------------------

variable "ad_dc" {
  description = "The domain controller: ldaps://dc1.example.local (or ldap://... with StartTLS)"
}
variable "ad_ca_file" {
  description = "PEM file of the CA that signed the DC's LDAPS certificate"
}
variable "ad_bind_dn" {
  description = "A domain admin of the new provider or the client (not the old provider's): its DN or UPN"
}
variable "ad_bind_password" {
  description = "That account's password"
  sensitive   = true
}
variable "ad_service_accounts" {
  description = "Service accounts whose passwords the old provider chose (sAMAccountNames)"
  type        = list(string)
  default     = []
}
variable "ad_sysvol_path" {
  description = "Where SYSVOL can be read, for the scripts and scheduled tasks that name the old provider (null: not searched)"
  type        = string
  default     = null
}

# --- Microsoft 365 / Entra ID (Graph) ---------------------------------------

variable "m365_tenant_id" {
  description = "The client's tenant ID: Entra admin center > Overview > Tenant ID"
}
variable "m365_client_id" {
  description = "An app registration of the new provider with User.ReadWrite.All, Directory.ReadWrite.All, RoleManagement.ReadWrite.Directory"
}
variable "m365_client_secret" {
  description = "A client secret of that app registration"
  sensitive   = true
}
variable "m365_known_accounts" {
  description = "Cloud accounts whose passwords the old provider knew (UPNs), such as the break-glass admin"
  type        = list(string)
  default     = []
}
variable "m365_authority_host" {
  description = "Login host: keep the default, except in a national cloud or the lab"
  default     = "https://login.microsoftonline.com/"
}
variable "m365_graph_endpoint" {
  description = "Graph endpoint: keep the default, except in a national cloud or the lab"
  default     = "https://graph.microsoft.com"
}
variable "m365_unverified_authority_host" {
  description = "LAB ONLY: m365_authority_host is none of Microsoft's clouds (the client secret goes there; every plan names the host)"
  type        = bool
  default     = false
}
variable "m365_ca_file" {
  description = "A CA to trust for Graph in addition to the system's; usually not needed"
  default     = null
}

# --- SaaS tools (SCIM, REST) ------------------------------------------------

variable "psa_scim_url" {
  description = "The PSA's SCIM base URL, e.g. https://psa.example.com/scim/v2"
}
variable "psa_scim_token" {
  description = "A SCIM token of the new provider in the PSA"
  sensitive   = true
}
variable "rmm_api_url" {
  description = "The RMM's API base URL, e.g. https://rmm.example.com/api/v1"
}
variable "rmm_admin_token" {
  description = "An API token of the new provider in the RMM: the RMM's settings > API"
  sensitive   = true
}
variable "rmm_old_token_name" {
  description = "The name of the old provider's API token in the RMM"
}
variable "saas_ca_file" {
  description = "A CA to trust for both tools (null: the system's CAs)"
  default     = null
}

# --- Backups (restic) -------------------------------------------------------

variable "backup_repository" {
  description = "The restic repository: a path, sftp:user@host:/path, rest:https://..."
}
variable "backup_password" {
  description = "The repository password the old provider handed over"
  sensitive   = true
}
variable "backup_hosts" {
  description = "Hosts whose backups must be fresh"
  type        = list(string)
}
variable "backup_new_repository" {
  description = "Where the backups move to, a repository with a master key of the new provider's: a path, sftp:..., rest:..."
}

# --- The systems ------------------------------------------------------------

module "servers" {
  source                = "../linux-servers"
  servers               = var.servers
  private_key_file      = var.ssh_private_key_file
  known_hosts           = var.ssh_known_hosts
  old_provider_mentions = concat([var.old_provider_domain], var.old_provider_mentions)
}

module "ad" {
  source                  = "../ad-domain"
  dc                      = var.ad_dc
  ca_file                 = var.ad_ca_file
  bind_dn                 = var.ad_bind_dn
  bind_password           = var.ad_bind_password
  old_provider_upn_suffix = var.old_provider_domain
  service_accounts        = var.ad_service_accounts
  sysvol_path             = var.ad_sysvol_path
}

module "m365" {
  source                  = "../m365-tenant"
  tenant_id               = var.m365_tenant_id
  client_id               = var.m365_client_id
  client_secret           = var.m365_client_secret
  old_provider_name       = var.old_provider_name
  old_provider_domains    = [var.old_provider_domain]
  old_provider_tenant_ids = var.old_provider_tenant_ids
  known_accounts          = var.m365_known_accounts
  authority_host          = var.m365_authority_host
  graph_endpoint          = var.m365_graph_endpoint
  ca_file                 = var.m365_ca_file

  unverified_authority_host = var.m365_unverified_authority_host
}

module "saas" {
  source                  = "../saas-apps"
  psa_scim_url            = var.psa_scim_url
  psa_scim_token          = var.psa_scim_token
  old_provider_domain     = var.old_provider_domain
  rmm_api_url             = var.rmm_api_url
  rmm_admin_token         = var.rmm_admin_token
  old_provider_token_name = var.rmm_old_token_name
  ca_file                 = var.saas_ca_file
}

module "backups" {
  source         = "../backups"
  new_repository = var.backup_new_repository
  repository     = var.backup_repository
  password       = var.backup_password
  hosts          = var.backup_hosts
}

# --- What only a person can do ----------------------------------------------

step "core.manual" "registrar_dns" {
  instructions = "Registrar and DNS: move the domain's registrar account and the DNS hosting to the client's own e-mail address, change their passwords and second factors, and remove the old provider's contacts and API keys there."
  confirm_by   = "the client's managing director"
}

step "core.manual" "firewall_vpn" {
  instructions = "Firewall and VPN: delete the old provider's VPN profiles and admin accounts on the firewall, change the remaining admin password and the pre-shared keys, take its IP ranges out of the allow lists, and unlink the firewall's cloud portal from the old provider's account."
  confirm_by   = "the new provider's engineer"
}

step "core.manual" "rmm_agents" {
  instructions = "Remote management: uninstall the old provider's RMM and remote-support agents from every computer and server (check the software inventory for what is left), and install the new provider's."
  confirm_by   = "the new provider's engineer"
}

step "core.manual" "contracts" {
  instructions = "Contracts: check that the old provider's contract is terminated in time (notice period), that its licences (Microsoft CSP, backup, antivirus) are moved to the new provider or the client before they lapse, and that the client's data held by the old provider is returned or deleted in writing."
  confirm_by   = "the client's managing director"
}

step "core.manual" "handover_protocol" {
  instructions = "Sign the written handover protocol with the old provider: what was handed over (documentation, passwords, licences, hardware), what is still open, and that it keeps no access. Attach the onboarding checklist (switchover handover)."
  confirm_by   = "the client's managing director and the new provider"
  # Not module.ad: its second krbtgt reset is due 10 hours after the first;
  # the checklist names it as open.
  depends_on = [
    step.registrar_dns, step.firewall_vpn, step.rmm_agents, step.contracts,
    module.servers, module.m365, module.saas, module.backups,
  ]
}

handover {
  item "Watch the first nightly backup with the new repository key" {
    owner  = "new provider"
    due    = "the day after the switch"
    detail = "restic snapshots: a snapshot of each host younger than a day."
  }
  item "Check Entra Connect sync after the AD changes" {
    owner  = "new provider"
    due    = "the day of the switch"
    detail = "The disabled AD accounts must show as disabled in Entra ID after the next sync cycle."
  }
}
