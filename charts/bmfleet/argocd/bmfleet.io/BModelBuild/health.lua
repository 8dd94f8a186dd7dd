-- Argo CD health check for bmfleet.io/BModelBuild (argocd-cm key
-- resource.customizations.health.bmfleet.io_BModelBuild; see docs/operations/gitops.md).
-- kstatus rules (sigs.k8s.io/cli-utils), in order:
--   being deleted, no status yet, or status.observedGeneration behind metadata.generation -> Progressing
--   Stalled=True -> Degraded; Ready=False with reason GateFailed (a precision gate failed) -> Degraded
--   Reconciling=True -> Progressing; Ready=True, or no Ready at all -> Healthy; Ready False/Unknown -> Progressing
-- (Stalled is checked before Reconciling; kstatus takes whichever is first in the list when both are True.)
-- Argo CD runs it with gopher-lua (Lua 5.1) and the resource in the global `obj`.
local hs = {}

local function find(conditions, kind)
  for _, c in ipairs(conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function say(health, c, fallback)
  hs.status = health
  hs.message = fallback
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    hs.message = (c.reason or c.type) .. ": " .. c.message
  elseif c ~= nil and c.reason ~= nil then
    hs.message = c.reason
  end
  return hs
end

local meta = obj.metadata or {}
local status = obj.status
if meta.deletionTimestamp ~= nil then
  return say("Progressing", nil, "being deleted")
end
if status == nil or status.observedGeneration == nil then
  return say("Progressing", nil, "waiting for the bmfleet operator to observe this generation")
end
if meta.generation ~= nil and status.observedGeneration ~= meta.generation then
  return say("Progressing", nil, "generation " .. meta.generation .. " not observed yet (status is for "
    .. status.observedGeneration .. ")")
end
local stalled = find(status.conditions, "Stalled")
local ready = find(status.conditions, "Ready")
local reconciling = find(status.conditions, "Reconciling")
if stalled ~= nil and stalled.status == "True" then
  return say("Degraded", stalled, "stalled")
end
if ready ~= nil and ready.status == "False" and ready.reason == "GateFailed" then
  return say("Degraded", ready, "a precision gate failed")
end
if reconciling ~= nil and reconciling.status == "True" then
  return say("Progressing", reconciling, "reconciling")
end
if ready == nil or ready.status == "True" then
  return say("Healthy", ready, "reconciled")
end
return say("Progressing", ready, "not ready yet")
