// A SCIM 2.0 service provider for the scim plugin's tests: SCIMMY (filters,
// PATCH, paging, schema validation, error responses) behind SCIMMY's
// Express routers, with an in-memory store. Options (environment):
//   SCIM_TOKEN     the bearer token it accepts
//   SCIM_NO_FILTER "1": advertise and enforce "no filter support"
//   SCIM_THROTTLE  N: every Nth request is answered 429 with Retry-After: 1
//   SCIM_ETAG      "1": resources carry meta.version; If-Match is enforced
//   SCIM_MAX_RESULTS  the largest page it serves (default 50)
//   SCIM_NO_PATCH  "1": advertise and enforce "no PATCH support" (PUT only)
// It prints "listening PORT" once it listens on 127.0.0.1 (port 0: any).
const express = require("express");
const SCIMMY = require("scimmy").default ?? require("scimmy");
const SCIMMYRouters = require("scimmy-routers").default ?? require("scimmy-routers");
const crypto = require("crypto");

const token = process.env.SCIM_TOKEN || "test-token";
const noFilter = process.env.SCIM_NO_FILTER === "1";
const throttle = parseInt(process.env.SCIM_THROTTLE || "0", 10);
const etags = process.env.SCIM_ETAG === "1";
const maxResults = parseInt(process.env.SCIM_MAX_RESULTS || "50", 10);
const noPatch = process.env.SCIM_NO_PATCH === "1";


const stores = { Users: new Map(), Groups: new Map() };
const version = (r) => (etags ? { version: `W/"${r._v}"` } : {});

function declare(Resource, store) {
  SCIMMY.Resources.declare(Resource)
    .ingress((resource, instance) => {
      const id = resource.id ?? crypto.randomUUID();
      const old = store.get(id);
      if (resource.id && !old) throw new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
      const now = new Date();
      const rec = { ...instance, id, _v: old ? old._v + 1 : 1, _created: old ? old._created : now, _modified: now };
      store.set(id, rec);
      return out(rec);
    })
    .egress((resource) => {
      if (resource.id) {
        const rec = store.get(resource.id);
        if (!rec) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        return out(rec);
      }
      const all = [...store.values()].map(out);
      return resource.filter ? resource.filter.match(all) : all;
    })
    .degress((resource) => {
      if (!store.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
    });
}
function out(rec) {
  const { _v, _created, _modified, ...r } = rec;
  return { ...r, meta: { created: _created, lastModified: _modified, ...version(rec) } };
}
declare(SCIMMY.Resources.User, stores.Users);
declare(SCIMMY.Resources.Group, stores.Groups);

const app = express();
let requests = 0;
const scimError = (res, status, scimType, detail) =>
  res.status(status).type("application/scim+json").send(JSON.stringify({
    schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: String(status), ...(scimType ? { scimType } : {}), detail }));
app.use("/scim/v2", (req, res, next) => {
  requests++;
  if (throttle > 0 && requests % throttle === 0) {
    res.set("Retry-After", "1");
    return scimError(res, 429, null, "Too many requests");
  }
  if (noFilter && req.query.filter !== undefined) return scimError(res, 400, "invalidFilter", "Filtering is not supported");
  if (noPatch && req.method === "PATCH") return scimError(res, 501, null, "PATCH is not supported");
  const m = req.path.match(/^\/(Users|Groups)\/([^/]+)$/);
  if (etags && m && ["PUT", "PATCH", "DELETE"].includes(req.method) && req.get("If-Match")) {
    const rec = stores[m[1]].get(m[2]);
    if (rec && req.get("If-Match") !== `W/"${rec._v}"`) return scimError(res, 412, null, `Resource ${m[2]} was changed (version W/"${rec._v}")`);
  }
  next();
});
app.get("/test/requests", (req, res) => res.json({ requests }));
const routers = new SCIMMYRouters({
  type: "bearer",
  handler: (req) => {
    if (req.get("Authorization") !== `Bearer ${token}`) throw new Error("Authorization failure");
    return "test";
  },
});
// After the routers, which set every feature they implement to supported.
SCIMMY.Config.set({
  patch: { supported: !noPatch },
  filter: { supported: !noFilter, maxResults },
  etag: { supported: etags },
  bulk: { supported: false },
  sort: { supported: false },
  changePassword: { supported: false },
});
app.use("/scim/v2", routers);
const server = app.listen(parseInt(process.env.PORT || "0", 10), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
