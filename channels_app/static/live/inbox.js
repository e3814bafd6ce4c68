// The live inbox: plain JavaScript, no build step. Everything from the server is rendered with
// textContent (never innerHTML): bodies, names and extracted fields are data, not markup.
"use strict";

(() => {
  const csrfToken = document.body.dataset.csrfToken;
  const myId = Number(document.body.dataset.userId);
  const UNSETTLED = new Set(["pending", "sending", "unknown", "sent", "delivered"]);
  const TICKS = {
    pending: "🕓", sending: "🕓", unknown: "?", sent: "✓", delivered: "✓✓", read: "✓✓", played: "✓✓", failed: "⚠",
  };
  const PAGE_SIZE = 200;
  const state = {
    conversations: new Map(),
    openId: null,
    openConversation: null,
    lastMessageId: 0,
    messages: new Map(),
    // Live events for the open conversation's messages, counted (liveEvents), and the count at
    // each message's last one (liveAt): see addFetched.
    liveEvents: 0,
    liveAt: new Map(),
    // Whether the socket hears the open conversation's events yet (the server said "opened"),
    // and whether the page fetched its messages before it did: a change in between sent its
    // event to no socket of this page, so the "opened" fetches again.
    hearing: false,
    fetchedUnheard: false,
    contact: null,
    socket: null,
    retries: 0,
    // Helpdesk: the triage view and filters the list shows, paging, the menus' data.
    view: "open",
    filters: {},
    hasMore: false,
    loadingMore: false,
    setup: { staff: [], labels: [], canned_responses: [], channels: [] },
    flagged: new Set(),
    loadedAt: Date.now(),
  };
  const $ = (id) => document.getElementById(id);
  // What the viewer may do ({action: allowed}, conversations.api.PAGE_ACTIONS): rendered into the
  // page, read again on reconnect and sent by the socket when it changes. Other controls are hidden.
  state.actions = JSON.parse($("viewer-actions").textContent);
  const may = (action) => Boolean(state.actions[action]);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`/api/${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || firstFieldError(data) || response.statusText);
    return data;
  }

  function firstFieldError(data) {
    const [field, errors] = Object.entries(data || {})[0] || [];
    return field ? `${field}: ${[].concat(errors).join(" ")}` : "";
  }

  function formatTime(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleDateString([], { day: "numeric", month: "short" });
  }

  function tick(status) {
    const span = el("span", `tick tick-${status}`, TICKS[status] || "");
    span.title = status;
    return span;
  }

  function showError(message) {
    const box = $("action-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // --- Conversation list: one row per contact (person), showing their latest conversation ---
  // The server's page order: newest activity first, id breaking ties (keyset pages follow it).
  function activity(conversation) {
    return Date.parse(conversation.updated_at) || 0;
  }

  function sortedRows() {
    return [...state.conversations.values()].sort((a, b) => activity(b) - activity(a) || b.id - a.id);
  }

  function renderList() {
    const rows = contactRows();
    $("conversation-list").replaceChildren(...rows.map(({ shown, unread, latest }) => rowFor(shown, unread, latest)));
    $("list-empty").hidden = rows.length > 0;
  }

  // The rows in list order: the open conversation stands for its contact; otherwise the contact's
  // most recent one. The unread count is of all the contact's conversations.
  function contactRows() {
    const byContact = new Map();
    for (const conversation of sortedRows()) {
      const key = conversation.contact.id;
      if (!byContact.has(key)) byContact.set(key, []);
      byContact.get(key).push(conversation);
    }
    return [...byContact.values()].map((group) => ({
      shown: group.find((c) => c.id === state.openId) || group[0],
      unread: group.reduce((sum, c) => sum + (unreadFor(c) || 0), 0),
      latest: group[0],
    }));
  }

  // Unread counts are per agent: a live event carries each agent's own count (`unread_by`) and
  // the team's (for an agent who never opened it); the API's rows carry this agent's.
  function unreadFor(conversation) {
    const own = conversation.unread_by && conversation.unread_by[String(myId)];
    return own !== undefined ? own : conversation.unread_count;
  }

  function rowFor(conversation, unread, latest) {
    const item = el("li", "conversation");
    item.dataset.conversationId = conversation.id;
    item.dataset.contactId = conversation.contact.id;
    if (conversation.id === state.openId) item.classList.add("active");
    const button = el("button", "conversation-button");
    button.type = "button";
    const top = el("div", "row-top");
    top.append(el("span", "name", conversation.contact.name), el("time", "time", formatTime(latest.last_message_at)));
    const bottom = el("div", "row-bottom");
    if (latest.last_message_author && latest.last_message_author !== "customer" && latest.delivery_status) {
      bottom.append(tick(latest.delivery_status));
    }
    bottom.append(el("span", "preview", latest.last_message_preview || ""));
    if (unread > 0) bottom.append(el("span", "badge", unread));
    const tags = el("div", "tags");
    // A badge per channel the person uses; the one of the conversation the row opens stands out.
    for (const channel of conversation.contact.channels) {
      const badge = el("span", `tag channel${channel.channel === conversation.channel ? " current" : ""}`, channel.label);
      badge.dataset.channel = channel.channel;
      tags.append(badge);
    }
    if (conversation.profile.phone_number) tags.append(el("span", "tag phone", conversation.profile.phone_number));
    if (conversation.mode === "human") {
      tags.append(el("span", "tag human", `Held by ${conversation.holder ? conversation.holder.name : "staff"}`));
    }
    if (conversation.needs_human) tags.append(el("span", "tag needs-human", "Asked for a person"));
    if (conversation.resolved_at) tags.append(el("span", "tag resolved", "Resolved"));
    if (isSnoozed(conversation)) tags.append(el("span", "tag snoozed", `Snoozed until ${formatTime(conversation.snoozed_until)}`));
    (conversation.labels || []).forEach((label) => tags.append(labelChip(label)));
    button.append(top, bottom, tags);
    button.addEventListener("click", () => openConversation(conversation.id));
    item.append(button);
    return item;
  }

  function upsertConversation(conversation) {
    alertIfNewlyFlagged(conversation);
    if (matchesList(conversation)) state.conversations.set(conversation.id, conversation);
    else state.conversations.delete(conversation.id);
    if (conversation.id === state.openId) state.openConversation = conversation;
    renderList();
    scheduleCounts();
    if (conversation.id === state.openId) {
      renderChat();
      markRead();
      // Merged into another contact, or split off: the side panel follows the person.
      if (state.contact && state.contact.id !== conversation.contact.id) loadContact(true).catch(() => {});
    }
  }

  // Erased (GDPR): gone from the list, and from the screen if it is open.
  function removeConversations(ids) {
    ids.forEach((id) => state.conversations.delete(id));
    if (ids.includes(state.openId)) {
      state.openId = null;
      state.openConversation = null;
      $("messages").replaceChildren();
    }
    renderList();
    renderChat();
  }

  // A first page overtaken by a newer read (the socket's first open while the page loads, a quick
  // change of tab) is dropped, so a late answer never replaces the list read since. Changing the
  // view or the filters starts a new list (`reset`); any other re-read (the socket came back, a
  // merge) refreshes the first page and keeps the older pages already loaded beyond it, so a
  // reconnect never throws away what the agent scrolled to.
  let listGeneration = 0;
  let viewGeneration = 0; // the view and filters asked for
  let shownView = -1; // those the rows on screen belong to; until they match, no paging
  function listBusy() {
    return shownView !== viewGeneration;
  }

  async function refreshList({ reset = false } = {}) {
    const generation = ++listGeneration;
    if (reset) {
      viewGeneration++;
      $("conversation-list").setAttribute("aria-busy", "true");
    }
    const view = viewGeneration;
    const conversations = await api(`conversations/?${listQuery({ view: state.view })}`);
    if (generation !== listGeneration || view !== viewGeneration) return;
    const fresh = new Map(conversations.map((c) => [c.id, c]));
    let hasMore = conversations.length >= PAGE_SIZE;
    if (hasMore && shownView === view) {
      const boundary = conversations[conversations.length - 1];
      for (const c of state.conversations.values()) {
        if (!fresh.has(c.id) && (activity(boundary) - activity(c) || boundary.id - c.id) > 0) fresh.set(c.id, c);
      }
      if (fresh.size > conversations.length) hasMore = state.hasMore;
    }
    const list = $("conversation-list");
    if (shownView !== view) list.closest(".list").scrollTop = 0;
    shownView = view;
    list.setAttribute("aria-busy", "false");
    state.conversations = fresh;
    conversations.forEach((c) => c.needs_human && state.flagged.add(c.id));
    state.hasMore = hasMore;
    renderList();
    scheduleCounts();
    if (state.openId !== null && state.openConversation) renderChat();
    loadMoreIfAtEnd();
  }

  // --- The open conversation ---------------------------------------------------------------
  async function openConversation(id, aroundMessageId) {
    state.openId = id;
    state.lastMessageId = 0;
    state.messages = new Map();
    state.liveAt = new Map();
    $("messages").replaceChildren();
    showError("");
    state.hearing = state.fetchedUnheard = false;
    sendSocket({ action: "open", conversation_id: id });
    state.openConversation = null;
    document.body.dataset.pane = "chat";
    if (window.location.hash !== `#conversation=${id}`) history.replaceState(null, "", `#conversation=${id}`);
    renderList();
    upsertConversation(await api(`conversations/${id}/`));
    fillProfile(state.openConversation, true);
    await loadContact(true);
    if (aroundMessageId) {
      const since = fetching();
      const messages = await api(`conversations/${id}/messages/?around=${Number(aroundMessageId)}&limit=50`);
      if (id !== state.openId) return;
      messages.forEach((message) => addFetched(message, since, false));
      flashMessage(aroundMessageId);
    } else {
      await catchUp(0);
    }
  }

  async function loadContact(force) {
    const conversation = state.openConversation;
    if (!conversation) return;
    const contact = await api(`contacts/${conversation.contact.id}/`);
    if (state.openConversation?.contact.id !== contact.id) return;
    state.contact = contact;
    fillContact(force);
  }

  async function catchUp(after) {
    const id = state.openId;
    if (id === null) return;
    const since = fetching();
    const messages = await api(`conversations/${id}/messages/?after=${after}`);
    if (id !== state.openId) return;
    messages.forEach((message) => addFetched(message, since));
    markRead();
  }

  // Before a request for the open conversation's messages: the count of live events addFetched needs.
  function fetching() {
    if (!state.hearing) state.fetchedUnheard = true;
    return state.liveEvents;
  }

  // A message a request answered with, unless a live event for it came while the request was
  // out: the answer's copy may have been read before that event's change (a status that moved
  // meanwhile) and would undo it for good, while every later change comes as an event of its own.
  function addFetched(message, since, scroll = true) {
    if (!(state.liveAt.get(message.id) > since)) addMessage(message, scroll);
  }

  function catchUpPoint() {
    // New messages come after the last id; the ticks of recent replies may also have moved.
    let after = state.lastMessageId;
    for (const message of state.messages.values()) {
      if (message.direction === "out" && UNSETTLED.has(message.status)) after = Math.min(after, message.id - 1);
    }
    return after;
  }

  function addMessage(message, scroll = true) {
    state.messages.set(message.id, message);
    const node = messageNode(message);
    const list = $("messages");
    const existing = list.querySelector(`[data-message-id="${Number(message.id)}"]`);
    if (existing) {
      existing.replaceWith(node);
    } else {
      const later = [...list.children].find((child) => Number(child.dataset.messageId) > message.id);
      list.insertBefore(node, later || null);
      if (scroll) list.scrollTop = list.scrollHeight;
    }
    state.lastMessageId = Math.max(state.lastMessageId, message.id);
  }

  function messageNode(message) {
    if (message.author === "note") {
      // Written for the model; staff read its short label (the full instruction on hover).
      const note = el("li", "note", message.staff_label || message.text);
      note.title = message.text;
      note.dataset.messageId = message.id;
      return note;
    }
    const item = el("li", `message ${message.direction} author-${message.author}`);
    item.dataset.messageId = message.id;
    const bubble = el("div", "bubble");
    if (message.author === "staff") bubble.append(el("span", "by", message.staff_name || "Staff"));
    if (message.author === "bot") bubble.append(el("span", "by", message.agent ? `Bot · ${message.agent}` : "Bot"));
    if (message.author === "private_note") bubble.append(el("span", "by", `Private note · ${message.staff_name || "Staff"}`));
    (message.attachments || []).forEach((attachment) => bubble.append(attachmentNode(attachment)));
    if (message.map_url) bubble.append(link(message.map_url, "📍 Open the map", "map-link"));
    const files = message.attachments || [];
    // A voice note's words are its transcript, already shown under the player.
    const isTranscript = files.some((attachment) => attachment.transcript && attachment.transcript === message.text);
    if ((message.text && !isTranscript) || !files.length) bubble.append(el("p", "text", message.text || `[${message.kind}]`));
    const meta = el("div", "meta");
    meta.append(el("time", null, formatTime(message.created_at)));
    if (message.direction === "out" && message.author !== "private_note") meta.append(tick(message.status));
    if (message.cost !== null && message.cost !== undefined) meta.append(el("span", "cost", formatCost(message.cost)));
    bubble.append(meta);
    if (message.status === "failed") {
      const reason = [message.error_code, message.error_title].filter(Boolean).join(" ");
      bubble.append(el("p", "failure", `Not delivered${reason ? `: ${reason}` : ""}`));
    }
    if (message.sources && message.sources.length) bubble.append(sourcesNode(message.sources));
    if (message.tool_calls && message.tool_calls.length) item.append(toolCallsNode(message.tool_calls));
    item.append(bubble);
    return item;
  }

  // The functions the model called while writing a reply (HTTP tools, searches, hand-overs):
  // collapsed, one line each when opened, the arguments and result as plain text.
  function toolCallsNode(calls) {
    const node = el("details", "tool-calls");
    const handovers = calls.filter((call) => call.status === "handover").map((call) => call.tool_name);
    const summary = `${calls.length} tool call${calls.length === 1 ? "" : "s"}`;
    node.append(el("summary", null, handovers.length ? `${summary} · ${handovers.join(", ")}` : summary));
    const list = el("ul");
    for (const call of calls) {
      const line = el("li", `tool-call tool-${call.status}`);
      const http = call.http_status ? ` HTTP ${call.http_status}` : "";
      line.append(el("strong", null, `${call.agent_name ? `${call.agent_name}: ` : ""}${call.tool_name}`));
      line.append(` ${call.status}${http}, ${Number(call.latency_ms)} ms`);
      line.append(el("code", "tool-arguments", JSON.stringify(call.arguments)));
      line.append(el("pre", "tool-result", call.result));
      list.append(line);
    }
    node.append(list);
    return node;
  }

  function formatCost(cost) {
    const conversation = state.conversations.get(state.openId);
    return `${Number(cost).toFixed(4)} ${conversation ? conversation.currency : ""}`.trim();
  }

  // The knowledge base passages a bot reply used (staff only): each links to its article in the
  // admin, where a wrong answer is fixed. Passages given but not cited are listed as such.
  function sourcesNode(sources) {
    const cited = sources.some((source) => source.cited);
    const node = el("p", "sources", cited ? "Sources: " : "Given, not cited: ");
    sources
      .filter((source) => source.cited === cited)
      .forEach((source, index) => {
        if (index) node.append(", ");
        const link = el("a", "source", source.heading ? `${source.title} > ${source.heading}` : source.title);
        link.href = `/admin/knowledge/article/${Number(source.article_id)}/change/`;
        link.target = "_blank";
        link.rel = "noopener";
        node.append(link);
      });
    return node;
  }

  function markRead() {
    const conversation = state.openConversation;
    if (!conversation || unreadFor(conversation) === 0 || !state.lastMessageId) return;
    api(`conversations/${state.openId}/read/`, { method: "POST", body: { up_to_message_id: state.lastMessageId } }).catch(
      () => {},
    );
  }

  function renderChat() {
    const conversation = state.openConversation;
    $("placeholder").hidden = Boolean(conversation);
    $("chat").hidden = !conversation;
    $("profile").hidden = !conversation;
    if (!conversation) return;
    const holder = conversation.holder;
    const isMine = conversation.mode === "human" && holder && holder.id === myId;
    $("chat-title").textContent = conversation.contact.name;
    $("chat-subtitle").textContent = [
      conversation.profile.phone_number,
      conversation.channel_label,
      conversation.agent ? `agent: ${conversation.agent}` : "",
      `cost: ${formatCost(conversation.cost)}`,
    ]
      .filter(Boolean)
      .join(" · ");
    let holderText = "The bot answers.";
    if (conversation.mode === "human") holderText = isMine ? "You hold this conversation." : `${holder ? holder.name : "Staff"} holds this conversation.`;
    if (conversation.needs_human && conversation.mode !== "human") holderText += " The customer asked for a person.";
    if (conversation.resolved_at) holderText += " Resolved.";
    if (isSnoozed(conversation)) holderText += ` Snoozed until ${formatTime(conversation.snoozed_until)}.`;
    $("chat-holder").textContent = holderText;
    renderTriageActions(conversation);
    const takeOver = $("take-over");
    takeOver.hidden = Boolean(isMine) || !may("take_over");
    takeOver.textContent = conversation.mode === "human" && holder ? `Take over from ${holder.name}` : "Take over";
    $("hand-back").hidden = !isMine || !may("take_over");

    const windowClosed = !conversation.is_window_open;
    const writingNote = allowComposerModes() === "note";
    const canWrite = writingNote || may("write");
    $("composer").hidden = !canWrite || (isMine && windowClosed && !writingNote);
    $("template-form").hidden = !(isMine && windowClosed) || writingNote || !may("write");
    $("composer-text").disabled = !isMine && !writingNote;
    $("send").disabled = !isMine && !writingNote;
    $("file-input").disabled = !isMine || writingNote;
    $("file-input").closest("label").hidden = !isMine || writingNote;
    $("send").textContent = writingNote ? "Add note" : "Send";
    $("composer").classList.toggle("note-mode", writingNote);
    const note = $("composer-note");
    if (writingNote) note.textContent = "Private note: only staff see it; never sent, never shown to the bot.";
    else if (!isMine) note.textContent = "Take over the conversation to write.";
    else if (windowClosed) note.textContent = "The customer's last message is over 24 hours old: WhatsApp only delivers an approved template.";
    else note.textContent = "";
    note.hidden = !note.textContent;
  }

  function fillProfile(conversation, force) {
    if (!conversation) return;
    const profile = conversation.profile;
    $("profile-display-name").textContent = profile.display_name || "—";
    $("profile-phone").textContent = profile.phone_number || "—";
    $("profile-channel").textContent = conversation.channel_label;
    $("profile-cost").textContent = formatCost(conversation.contact_cost);
    if (force) {
      state.contact = null;
      $("profile-status").textContent = "";
      $("contact-conversations").replaceChildren();
      $("contact-identities").replaceChildren();
      $("contact-suggestions").replaceChildren();
    }
  }

  // The person behind the open conversation: their details, every conversation on any channel
  // (each opens from here), their channel identities (split one off) and suggested matches.
  function fillContact(force) {
    const contact = state.contact;
    if (!contact) return;
    const form = $("profile-form");
    form.dataset.contactId = contact.id;
    const editable = may("change_contact");
    form.querySelector("button[type=submit]").hidden = !editable;
    $("profile-admin-link").href = `/admin/profiles/contact/${Number(contact.id)}/change/`;
    for (const name of ["first_name", "last_name", "company", "email"]) {
      const input = form.elements[name];
      if (force || document.activeElement !== input) input.value = contact[name] || "";
      input.readOnly = !editable;
    }
    $("contact-opted-out").hidden = !contact.is_opted_out;
    $("contact-conversations").replaceChildren(
      ...contact.conversations.map((conversation) => {
        const item = el("li", conversation.id === state.openId ? "current" : "");
        const label = `${conversation.channel_label} · ${conversation.status} · ${formatTime(conversation.last_message_at || conversation.updated_at)}`;
        if (conversation.id === state.openId) {
          item.append(el("span", null, `${label} · shown`));
        } else {
          const link = el("a", "open-conversation", label);
          link.href = `#conversation-${Number(conversation.id)}`;
          link.dataset.conversationId = conversation.id;
          link.addEventListener("click", (event) => {
            event.preventDefault();
            openConversation(conversation.id).catch((error) => showError(error.message));
          });
          item.append(link);
        }
        return item;
      }),
    );
    $("contact-identities").replaceChildren(
      ...contact.identities.map((identity) => {
        const who = identity.phone_number || identity.display_name || `#${identity.id}`;
        const item = el("li", null, `${identity.provider_label}: ${who}`);
        if (contact.identities.length > 1 && may("change_contact")) {
          const split = el("button", "small split", "Split off");
          split.type = "button";
          split.dataset.identityId = identity.id;
          split.addEventListener("click", () => contactAction(`identities/${identity.id}/split/`, {}));
          item.append(" ", split);
        }
        return item;
      }),
    );
    $("contact-suggestions").replaceChildren(
      ...contact.suggestions.map((suggestion) => {
        const item = el("li", null, `${suggestion.name} (same ${suggestion.reason}) `);
        const merge = el("button", "small merge", "Merge into this contact");
        merge.type = "button";
        merge.dataset.contactId = suggestion.id;
        merge.addEventListener("click", () =>
          contactAction(`contacts/${contact.id}/merge/`, { contact_id: suggestion.id }),
        );
        item.append(merge);
        return item;
      }),
    );
    $("contact-suggestions-box").hidden = contact.suggestions.length === 0 || !may("change_contact");
  }

  async function contactAction(path, body) {
    showError("");
    try {
      await api(path, { method: "POST", body });
      await refreshList();
      await loadContact(false);
    } catch (error) {
      showError(error.message);
    }
  }

  // --- Actions -----------------------------------------------------------------------------
  async function act(path, body) {
    showError("");
    try {
      return await api(`conversations/${state.openId}/${path}`, { method: "POST", body: body || {} });
    } catch (error) {
      showError(error.message);
      return null;
    }
  }

  $("take-over").addEventListener("click", async () => {
    const conversation = await act("takeover/");
    if (conversation) upsertConversation(conversation);
  });

  $("hand-back").addEventListener("click", async () => {
    const conversation = await act("handback/");
    if (conversation) upsertConversation(conversation);
  });

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const textarea = $("composer-text");
    const text = textarea.value.trim();
    if (!text) return;
    const since = state.liveEvents;
    const message = await act(composerMode() === "note" ? "notes/" : "send/", { text });
    if (message) {
      textarea.value = "";
      addFetched(message, since);
    }
  });

  $("composer-text").addEventListener("keydown", (event) => {
    if (cannedKeydown(event)) return;
    if (event.key === "Escape") {
      event.target.blur();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  $("template-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const parameters = $("template-parameters").value.split("\n").map((line) => line.trim()).filter(Boolean);
    const since = state.liveEvents;
    const message = await act("template/", {
      name: $("template-name").value.trim(),
      language: $("template-language").value.trim(),
      parameters,
    });
    if (message) addFetched(message, since);
  });

  $("profile-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const changes = {};
    for (const name of ["first_name", "last_name", "company", "email"]) changes[name] = form.elements[name].value.trim();
    try {
      const contact = await api(`contacts/${form.dataset.contactId}/`, { method: "PATCH", body: changes });
      applyContact(contact);
      $("profile-status").textContent = "Saved.";
    } catch (error) {
      $("profile-status").textContent = error.message;
    }
  });

  function applyContact(contact) {
    const open = state.openConversation;
    if (open && open.contact.id === contact.id) {
      state.contact = contact;
      fillContact(false);
    }
  }

  // --- Websocket: live events, reconnect with backoff, catch up ----------------------------
  function sendSocket(payload) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(payload));
  }

  function setConnection(status, label) {
    const badge = $("connection");
    badge.dataset.state = status;
    badge.textContent = label;
  }

  function handleEvent(event) {
    if (event.type === "conversation") {
      upsertConversation(event.conversation);
    } else if (event.type === "message" || event.type === "status") {
      if (event.message.conversation_id === state.openId) {
        state.liveEvents += 1;
        state.liveAt.set(event.message.id, state.liveEvents);
        addMessage(event.message);
      }
    } else if (event.type === "opened" && event.conversation_id === state.openId) {
      state.hearing = true;
      if (state.fetchedUnheard) {
        state.fetchedUnheard = false;
        catchUp(catchUpPoint()).catch((error) => showError(error.message));
      }
    } else if (event.type === "contact") {
      applyContact(event.contact);
    } else if (event.type === "conversation_removed") {
      removeConversations(event.conversation_ids);
    } else if (event.type === "permissions") {
      applyActions(event.actions);
    }
  }

  function applyActions(actions) {
    state.actions = actions;
    renderChat();
    fillContact(false);
  }

  function connect() {
    setConnection("connecting", "Connecting…");
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/ws/live/`);
    state.socket = socket;
    socket.addEventListener("open", () => {
      // What changed while the socket was down: colleagues, labels, answers, what the viewer may do.
      if (state.retries > 0) loadSetup().catch((error) => showError(error.message));
      state.retries = 0;
      setConnection("live", "Live");
      state.hearing = false;
      if (state.openId !== null) sendSocket({ action: "open", conversation_id: state.openId });
      refreshList().then(() => catchUp(catchUpPoint())).catch((error) => showError(error.message));
    });
    socket.addEventListener("message", (message) => handleEvent(JSON.parse(message.data)));
    socket.addEventListener("close", (closed) => {
      state.socket = null;
      if (closed.code === 4403) {
        setConnection("forbidden", "Signed out: staff access ended. Reload to sign in.");
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** state.retries) * (0.75 + Math.random() * 0.5);
      state.retries += 1;
      setConnection("offline", "Reconnecting…");
      window.setTimeout(connect, delay);
    });
  }

  // --- Helpdesk: triage views, filters, counts, pages --------------------------------------
  function isSnoozed(conversation) {
    return Boolean(conversation.snoozed_until) && Date.parse(conversation.snoozed_until) > Date.now();
  }

  // The server's view and filter rules, for rows that arrive live (selectors/inbox.py).
  function matchesList(conversation) {
    const unresolved = !conversation.resolved_at && conversation.status === "open";
    const awake = !isSnoozed(conversation);
    const holderId = conversation.mode === "human" && conversation.holder ? conversation.holder.id : null;
    const views = {
      needs_person: unresolved && conversation.needs_human,
      mine: unresolved && holderId === myId,
      unassigned: unresolved && awake && !conversation.holder,
      open: unresolved && awake,
      snoozed: unresolved && !awake,
      resolved: !unresolved,
      all: true,
    };
    if (!views[state.view]) return false;
    const f = state.filters;
    if (f.channel && conversation.channel !== f.channel) return false;
    if (f.agent === "bot" && conversation.mode !== "bot") return false;
    if (f.agent && f.agent !== "bot" && holderId !== Number(f.agent)) return false;
    if (f.label && !(conversation.labels || []).some((label) => label.id === Number(f.label))) return false;
    const day = (conversation.updated_at || "").slice(0, 10);
    if (f.since && day < f.since) return false;
    if (f.until && day > f.until) return false;
    return true;
  }

  function listQuery(extra) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...state.filters, ...extra })) if (value) params.set(key, value);
    return params.toString();
  }

  // At most one counts query a second per page, however busy the inbox (one aggregate query).
  let countsTimer = null;
  let countsAt = 0;
  function scheduleCounts() {
    if (countsTimer !== null) return;
    const wait = Math.max(250, countsAt + 1000 - Date.now());
    countsTimer = window.setTimeout(() => {
      countsTimer = null;
      countsAt = Date.now();
      refreshCounts();
    }, wait);
  }

  async function refreshCounts() {
    const counts = await api(`conversations/counts/?${listQuery({})}`).catch(() => null);
    if (!counts) return;
    for (const node of document.querySelectorAll("[data-count]")) node.textContent = counts[node.dataset.count] ?? "";
  }

  function selectView(view) {
    state.view = view;
    for (const tab of document.querySelectorAll("#tabs [data-view]")) tab.setAttribute("aria-selected", String(tab.dataset.view === view));
    refreshList({ reset: true }).catch((error) => showError(error.message));
  }

  document.querySelectorAll("#tabs [data-view]").forEach((tab) => tab.addEventListener("click", () => selectView(tab.dataset.view)));

  $("filters").addEventListener("change", () => {
    const form = $("filters");
    state.filters = {};
    for (const name of ["channel", "agent", "label", "since", "until"]) state.filters[name] = form.elements[name].value;
    refreshList({ reset: true }).catch((error) => showError(error.message));
  });

  async function loadMore() {
    if (!state.hasMore || state.loadingMore || listBusy()) return;
    const rows = sortedRows();
    const last = rows[rows.length - 1];
    if (!last) return;
    state.loadingMore = true;
    $("list-more").hidden = false;
    const view = viewGeneration;
    try {
      const page = await api(
        `conversations/?${listQuery({ view: state.view, before: last.updated_at, before_id: last.id })}`,
      );
      if (view !== viewGeneration) return; // another view or other filters meanwhile
      page.forEach((c) => state.conversations.set(c.id, c));
      state.hasMore = page.length >= PAGE_SIZE;
      renderList();
    } finally {
      state.loadingMore = false;
      $("list-more").hidden = true;
    }
  }

  // Scrolled near the end of the list (or the list is shorter than the screen): the next page.
  function loadMoreIfAtEnd() {
    const list = $("conversation-list").closest(".list");
    if (list.scrollTop + list.clientHeight > list.scrollHeight - 300) loadMore().catch(() => {});
  }

  $("conversation-list").closest(".list").addEventListener("scroll", loadMoreIfAtEnd);

  // Snoozed rows wake up by the clock, with no event: look again every minute.
  window.setInterval(() => {
    renderList();
    scheduleCounts();
  }, 60000);

  // --- Helpdesk: the setup (colleagues, labels, canned responses) and the menus ------------
  async function loadSetup() {
    state.setup = await api("setup/");
    const { channel, agent, label } = $("filters").elements;
    fillMenu(channel, state.setup.channels.map((c) => option(c.value, c.label)));
    fillMenu(agent, state.setup.staff.map((person) => option(person.id, person.name)));
    fillMenu(label, state.setup.labels.map((l) => option(l.id, l.name)));
    fillMenu(
      $("assign"),
      state.setup.staff.filter((person) => person.id !== myId).map((person) => option(person.id, person.name)),
    );
    applyActions(state.setup.actions);
  }

  // A menu's options after its fixed first ones ("Any", "The bot"…), keeping the choice made.
  function fillMenu(select, options) {
    const chosen = select.value;
    select.querySelectorAll("option:not([data-fixed])").forEach((node) => node.remove());
    select.append(...options);
    select.value = [...select.options].some((node) => node.value === chosen) ? chosen : "";
  }

  function option(value, label) {
    const node = el("option", null, label);
    node.value = String(value);
    return node;
  }

  function labelChip(label) {
    const chip = el("span", "tag label", label.name);
    chip.dataset.labelId = label.id;
    chip.style.setProperty("--label-color", /^#[0-9a-fA-F]{6}$/.test(label.color) ? label.color : "#667781");
    return chip;
  }

  function renderTriageActions(conversation) {
    const canTriage = may("triage");
    $("resolve").hidden = !canTriage || Boolean(conversation.resolved_at);
    $("reopen").hidden = !canTriage || !conversation.resolved_at;
    $("snooze").hidden = !canTriage;
    $("assign").hidden = !may("assign");
    $("assign").value = "";
    $("snooze").value = "";
    const box = $("chat-labels");
    const chosen = new Set((conversation.labels || []).map((label) => label.id));
    box.replaceChildren(
      ...state.setup.labels.map((label) => {
        const toggle = el("label", `label-toggle${chosen.has(label.id) ? " on" : ""}`);
        const input = el("input");
        input.type = "checkbox";
        input.checked = chosen.has(label.id);
        input.disabled = !canTriage;
        input.addEventListener("change", () => toggleLabel(label.id, input.checked));
        toggle.append(input, labelChip(label));
        return toggle;
      }),
    );
  }

  async function toggleLabel(labelId, on) {
    const current = new Set((state.openConversation.labels || []).map((label) => label.id));
    if (on) current.add(labelId);
    else current.delete(labelId);
    showError("");
    try {
      upsertConversation(
        await api(`conversations/${state.openId}/labels/`, { method: "PUT", body: { label_ids: [...current] } }),
      );
    } catch (error) {
      showError(error.message);
    }
  }

  $("assign").addEventListener("change", async (event) => {
    if (!event.target.value) return;
    const conversation = await act("assign/", { assignee_id: Number(event.target.value) });
    if (conversation) upsertConversation(conversation);
  });

  async function resolveOrReopen() {
    if (!state.openConversation) return;
    const conversation = await act(state.openConversation.resolved_at ? "reopen/" : "resolve/");
    if (conversation) upsertConversation(conversation);
  }
  $("resolve").addEventListener("click", resolveOrReopen);
  $("reopen").addEventListener("click", resolveOrReopen);

  function snoozeUntil(choice) {
    const until = new Date();
    if (choice === "1h") until.setHours(until.getHours() + 1);
    else if (choice === "4h") until.setHours(until.getHours() + 4);
    else if (choice === "tomorrow") {
      until.setDate(until.getDate() + 1);
      until.setHours(9, 0, 0, 0);
    } else if (choice === "week") {
      until.setDate(until.getDate() + ((8 - until.getDay()) % 7 || 7));
      until.setHours(9, 0, 0, 0);
    } else return null;
    return until.toISOString();
  }

  $("snooze").addEventListener("change", async (event) => {
    if (!event.target.value) return;
    const conversation = await act("snooze/", { until: snoozeUntil(event.target.value) });
    if (conversation) upsertConversation(conversation);
  });

  // --- Helpdesk: the composer's modes and canned responses (`/shortcut`) -------------------
  function composerMode() {
    const checked = document.querySelector("#composer input[name=mode]:checked");
    return checked ? checked.value : "reply";
  }

  // Offers only the modes the viewer may write in (replies: `write`, notes: `add_private_note`)
  // and leaves one of them chosen; returns the mode.
  function allowComposerModes() {
    const allowed = { reply: may("write"), note: may("add_private_note") };
    const radios = [...document.querySelectorAll("#composer input[name=mode]")];
    radios.forEach((radio) => (radio.closest("label").hidden = !allowed[radio.value]));
    const usable = radios.find((radio) => allowed[radio.value]);
    if (!allowed[composerMode()] && usable) usable.checked = true;
    return composerMode();
  }

  document.querySelectorAll("#composer input[name=mode]").forEach((radio) =>
    radio.addEventListener("change", () => {
      renderChat();
      $("composer-text").focus();
    }),
  );

  function setComposerMode(mode) {
    if (!may(mode === "note" ? "add_private_note" : "write")) return;
    document.querySelector(`#composer input[name=mode][value=${mode}]`).checked = true;
    renderChat();
    $("composer-text").focus();
  }

  const canned = { matches: [], index: 0 };

  function renderCanned() {
    const text = $("composer-text").value;
    const typed = /^\/([\w-]*)$/.exec(text);
    canned.matches = typed
      ? state.setup.canned_responses.filter((response) => response.shortcut.startsWith(typed[1].toLowerCase()))
      : [];
    canned.index = Math.min(canned.index, Math.max(0, canned.matches.length - 1));
    const list = $("canned");
    list.hidden = canned.matches.length === 0;
    list.replaceChildren(
      ...canned.matches.map((response, index) => {
        const item = el("li", index === canned.index ? "selected" : "");
        item.setAttribute("role", "option");
        item.append(el("strong", null, `/${response.shortcut}`), el("span", null, response.text));
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          insertCanned(response);
        });
        return item;
      }),
    );
  }

  function insertCanned(response) {
    $("composer-text").value = response.text;
    canned.matches = [];
    $("canned").hidden = true;
    $("composer-text").focus();
  }

  // Arrow keys choose, Enter or Tab inserts, Escape closes; true when the key was for the list.
  function cannedKeydown(event) {
    if (!canned.matches.length) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      canned.index = (canned.index + (event.key === "ArrowDown" ? 1 : canned.matches.length - 1)) % canned.matches.length;
      renderCanned();
    } else if (event.key === "Enter" || event.key === "Tab") {
      insertCanned(canned.matches[canned.index]);
    } else if (event.key === "Escape") {
      canned.matches = [];
      $("canned").hidden = true;
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  $("composer-text").addEventListener("input", renderCanned);

  // The customer sees "typing…" while the holder writes a reply (where the channel shows it).
  let typingSentAt = 0;
  $("composer-text").addEventListener("input", () => {
    const conversation = state.openConversation;
    const isMine = conversation && conversation.mode === "human" && conversation.holder && conversation.holder.id === myId;
    if (!isMine || composerMode() !== "reply" || Date.now() - typingSentAt < 20000) return;
    typingSentAt = Date.now();
    api(`conversations/${state.openId}/typing/`, { method: "POST", body: {} }).catch(() => {});
  });

  // --- Helpdesk: keyboard shortcuts ---------------------------------------------------------
  function isTyping(target) {
    return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function step(delta) {
    const rows = contactRows().map((row) => row.shown);
    if (!rows.length) return;
    const at = rows.findIndex((row) => row.id === state.openId);
    const next = rows[Math.min(rows.length - 1, Math.max(0, at === -1 ? 0 : at + delta))];
    if (next && next.id !== state.openId) openConversation(next.id).catch((error) => showError(error.message));
    const node = document.querySelector(`.conversation[data-conversation-id="${next.id}"]`);
    if (node) node.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    const actions = {
      j: () => step(1),
      k: () => step(-1),
      t: () => state.openConversation && !$("take-over").hidden && $("take-over").click(),
      e: () => may("triage") && resolveOrReopen(),
      r: () => state.openConversation && setComposerMode("reply"),
      n: () => state.openConversation && setComposerMode("note"),
      "/": () => $("search-input").focus(),
      "?": () => $("shortcuts").showModal(),
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  // --- Helpdesk: search over contacts and message text -------------------------------------
  let searchTimer = null;
  let searchSeq = 0;

  async function runSearch() {
    const query = $("search-input").value.trim();
    if (query.length < 2) {
      closeSearch();
      return;
    }
    const seq = ++searchSeq;
    const result = await api(`search/?${new URLSearchParams({ q: query })}`);
    if (seq !== searchSeq) return;
    const words = query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || [];
    $("search-results").hidden = false;
    $("search-contacts").replaceChildren(
      ...result.conversations.map((conversation) => {
        const item = el("li", "search-contact");
        const button = el("button", "link");
        button.type = "button";
        button.append(highlighted(`${conversation.contact.name} · ${conversation.profile.phone_number || conversation.channel_label}`, words));
        button.addEventListener("click", () => openConversation(conversation.id));
        item.append(button);
        return item;
      }),
    );
    $("search-messages").replaceChildren(
      ...result.messages.map((hit) => {
        const item = el("li", "search-hit");
        item.dataset.messageId = hit.message_id;
        const button = el("button", "link");
        button.type = "button";
        const who = el("span", "hit-who", `${hit.contact_name} · ${formatTime(hit.created_at)}`);
        const snippet = el("span", "hit-snippet");
        snippet.append(highlighted(hit.snippet, words));
        button.append(who, snippet);
        button.addEventListener("click", () => openConversation(hit.conversation_id, hit.message_id));
        item.append(button);
        return item;
      }),
    );
    if (!result.conversations.length) $("search-contacts").append(el("li", "empty", "No contact."));
    if (!result.messages.length) $("search-messages").append(el("li", "empty", "No message."));
  }

  // The words of the query marked in `text`, built as text nodes and <mark> (never innerHTML).
  function highlighted(text, words) {
    const fragment = document.createDocumentFragment();
    const lowered = text.toLowerCase();
    let at = 0;
    while (at < text.length) {
      let best = -1;
      let length = 0;
      for (const word of words) {
        const found = lowered.indexOf(word, at);
        if (found !== -1 && (best === -1 || found < best)) {
          best = found;
          length = word.length;
        }
      }
      if (best === -1) break;
      fragment.append(text.slice(at, best), el("mark", null, text.slice(best, best + length)));
      at = best + length;
    }
    fragment.append(text.slice(at));
    return fragment;
  }

  function closeSearch() {
    searchSeq += 1;
    $("search-results").hidden = true;
  }

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch().catch((error) => showError(error.message));
  });
  $("search-input").addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => runSearch().catch((error) => showError(error.message)), 300);
  });
  $("search-close").addEventListener("click", () => {
    $("search-input").value = "";
    closeSearch();
  });

  function flashMessage(messageId) {
    const node = $("messages").querySelector(`[data-message-id="${Number(messageId)}"]`);
    if (!node) return;
    node.classList.add("found");
    node.scrollIntoView({ block: "center" });
  }

  // --- Helpdesk: media ----------------------------------------------------------------------
  function link(href, text, className) {
    const node = el("a", className, text);
    node.href = href;
    node.target = "_blank";
    node.rel = "noopener noreferrer";
    return node;
  }

  function attachmentNode(attachment) {
    if (!attachment.url) {
      return el("p", "attachment pending", attachment.status === "failed" ? `[${attachment.kind}: download failed]` : `[${attachment.kind}: downloading…]`);
    }
    const box = el("div", `attachment attachment-${attachment.kind}`);
    if (attachment.kind === "image") {
      const image = el("img", "thumbnail");
      image.src = attachment.url;
      image.alt = attachment.caption || "Image from the customer";
      image.loading = "lazy";
      image.addEventListener("click", () => {
        $("lightbox-image").src = attachment.url;
        $("lightbox-image").alt = image.alt;
        $("lightbox").showModal();
      });
      box.append(image);
    } else if (attachment.kind === "audio" || attachment.kind === "video") {
      const player = el(attachment.kind, "player");
      player.controls = true;
      player.preload = "metadata";
      player.src = attachment.url;
      box.append(player);
      if (attachment.transcript) box.append(el("p", "transcript", attachment.transcript));
    } else {
      const download = link(attachment.url, `📄 ${attachment.filename || "Document"}`, "document-link");
      download.setAttribute("download", attachment.filename || "");
      box.append(download);
    }
    return box;
  }

  // --- Helpdesk: staff send a file (image or document) through the conversation's channel ----
  $("file-input").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file || state.openId === null) return;
    const form = new FormData();
    form.append("file", file);
    form.append("caption", $("composer-text").value.trim().slice(0, 1024));
    showError("");
    const since = state.liveEvents;
    const response = await fetch(`/api/conversations/${state.openId}/file/`, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken },
      credentials: "same-origin",
      body: form,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError(data.detail || firstFieldError(data) || response.statusText);
      return;
    }
    $("composer-text").value = "";
    addFetched(data, since);
  });

  // --- Helpdesk: desktop notification and sound when a conversation needs a person ---------
  const notifyKey = `whatsbot.alerts.${myId}`;
  $("notify-toggle").checked = window.localStorage.getItem(notifyKey) === "on";

  $("notify-toggle").addEventListener("change", async (event) => {
    const on = event.target.checked;
    window.localStorage.setItem(notifyKey, on ? "on" : "off");
    if (on && "Notification" in window && Notification.permission === "default") await Notification.requestPermission();
  });

  function alertIfNewlyFlagged(conversation) {
    const wasFlagged = state.flagged.has(conversation.id);
    if (!conversation.needs_human) {
      state.flagged.delete(conversation.id);
      return;
    }
    state.flagged.add(conversation.id);
    if (wasFlagged || Date.parse(conversation.updated_at) < state.loadedAt) return;
    if (window.localStorage.getItem(notifyKey) !== "on") return;
    if ("Notification" in window && Notification.permission === "granted") {
      const notice = new Notification("A customer asks for a person", { body: conversation.contact.name, tag: `needs-${conversation.id}` });
      notice.onclick = () => {
        window.focus();
        openConversation(conversation.id);
      };
    }
    beep();
  }

  function beep() {
    try {
      const audio = new AudioContext();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.4);
    } catch {
      // no audio device: the notification is enough
    }
  }

  // --- Helpdesk: phone layout (one pane at a time) and links into a conversation -----------
  $("back").addEventListener("click", () => {
    document.body.dataset.pane = "list";
  });

  function openFromHash() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const id = Number(params.get("conversation"));
    if (id && id !== state.openId) openConversation(id, Number(params.get("message")) || null).catch((error) => showError(error.message));
  }
  window.addEventListener("hashchange", openFromHash);

  refreshList().catch((error) => showError(error.message));
  loadSetup().catch((error) => showError(error.message));
  openFromHash();
  connect();
})();
