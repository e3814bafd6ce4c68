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
  const state = {
    conversations: new Map(),
    openId: null,
    lastMessageId: 0,
    messages: new Map(),
    contact: null,
    socket: null,
    retries: 0,
  };
  const $ = (id) => document.getElementById(id);

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
  function activity(conversation) {
    return Date.parse(conversation.last_message_at || conversation.updated_at) || 0;
  }

  function renderList() {
    const newest = (a, b) => activity(b) - activity(a) || b.id - a.id;
    const byContact = new Map();
    for (const conversation of [...state.conversations.values()].sort(newest)) {
      const key = conversation.contact.id;
      if (!byContact.has(key)) byContact.set(key, []);
      byContact.get(key).push(conversation);
    }
    // The open conversation stands for its contact; otherwise the contact's most recent one.
    const rows = [...byContact.values()].map((group) => ({
      shown: group.find((c) => c.id === state.openId) || group[0],
      unread: group.reduce((sum, c) => sum + (c.unread_count || 0), 0),
      latest: group[0],
    }));
    rows.sort((a, b) => newest(a.latest, b.latest));
    $("conversation-list").replaceChildren(...rows.map(({ shown, unread, latest }) => rowFor(shown, unread, latest)));
    $("list-empty").hidden = rows.length > 0;
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
    button.append(top, bottom, tags);
    button.addEventListener("click", () => openConversation(conversation.id));
    item.append(button);
    return item;
  }

  function upsertConversation(conversation) {
    state.conversations.set(conversation.id, conversation);
    renderList();
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
      $("messages").replaceChildren();
    }
    renderList();
    renderChat();
  }

  async function refreshList() {
    const conversations = await api("conversations/");
    state.conversations = new Map(conversations.map((c) => [c.id, c]));
    renderList();
    if (state.openId !== null && state.conversations.has(state.openId)) renderChat();
  }

  // --- The open conversation ---------------------------------------------------------------
  async function openConversation(id) {
    state.openId = id;
    state.lastMessageId = 0;
    state.messages = new Map();
    $("messages").replaceChildren();
    showError("");
    sendSocket({ action: "open", conversation_id: id });
    renderList();
    upsertConversation(await api(`conversations/${id}/`));
    fillProfile(state.conversations.get(id), true);
    await loadContact(true);
    await catchUp(0);
  }

  async function loadContact(force) {
    const conversation = state.conversations.get(state.openId);
    if (!conversation) return;
    const contact = await api(`contacts/${conversation.contact.id}/`);
    if (state.conversations.get(state.openId)?.contact.id !== contact.id) return;
    state.contact = contact;
    fillContact(force);
  }

  async function catchUp(after) {
    const id = state.openId;
    if (id === null) return;
    const messages = await api(`conversations/${id}/messages/?after=${after}`);
    if (id !== state.openId) return;
    messages.forEach(addMessage);
    markRead();
  }

  function catchUpPoint() {
    // New messages come after the last id; the ticks of recent replies may also have moved.
    let after = state.lastMessageId;
    for (const message of state.messages.values()) {
      if (message.direction === "out" && UNSETTLED.has(message.status)) after = Math.min(after, message.id - 1);
    }
    return after;
  }

  function addMessage(message) {
    state.messages.set(message.id, message);
    const node = messageNode(message);
    const list = $("messages");
    const existing = list.querySelector(`[data-message-id="${Number(message.id)}"]`);
    if (existing) {
      existing.replaceWith(node);
    } else {
      const later = [...list.children].find((child) => Number(child.dataset.messageId) > message.id);
      list.insertBefore(node, later || null);
      list.scrollTop = list.scrollHeight;
    }
    state.lastMessageId = Math.max(state.lastMessageId, message.id);
  }

  function messageNode(message) {
    if (message.author === "note") {
      const note = el("li", "note", message.text);
      note.dataset.messageId = message.id;
      return note;
    }
    const item = el("li", `message ${message.direction} author-${message.author}`);
    item.dataset.messageId = message.id;
    const bubble = el("div", "bubble");
    if (message.author === "staff") bubble.append(el("span", "by", message.staff_name || "Staff"));
    if (message.author === "bot") bubble.append(el("span", "by", message.agent ? `Bot · ${message.agent}` : "Bot"));
    bubble.append(el("p", "text", message.text || `[${message.kind}]`));
    const meta = el("div", "meta");
    meta.append(el("time", null, formatTime(message.created_at)));
    if (message.direction === "out") meta.append(tick(message.status));
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
    const conversation = state.conversations.get(state.openId);
    if (!conversation || conversation.unread_count === 0 || !state.lastMessageId) return;
    api(`conversations/${state.openId}/read/`, { method: "POST", body: { up_to_message_id: state.lastMessageId } }).catch(
      () => {},
    );
  }

  function renderChat() {
    const conversation = state.conversations.get(state.openId);
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
    $("chat-holder").textContent = holderText;
    const takeOver = $("take-over");
    takeOver.hidden = Boolean(isMine);
    takeOver.textContent = conversation.mode === "human" && holder ? `Take over from ${holder.name}` : "Take over";
    $("hand-back").hidden = !isMine;

    const windowClosed = !conversation.is_window_open;
    $("composer").hidden = isMine && windowClosed;
    $("template-form").hidden = !(isMine && windowClosed);
    $("composer-text").disabled = !isMine;
    $("send").disabled = !isMine;
    const note = $("composer-note");
    if (!isMine) note.textContent = "Take over the conversation to write.";
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
    for (const name of ["first_name", "last_name", "company", "email"]) {
      const input = form.elements[name];
      if (force || document.activeElement !== input) input.value = contact[name] || "";
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
        if (contact.identities.length > 1) {
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
    $("contact-suggestions-box").hidden = contact.suggestions.length === 0;
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
    const message = await act("send/", { text });
    if (message) {
      textarea.value = "";
      addMessage(message);
    }
  });

  $("composer-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  $("template-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const parameters = $("template-parameters").value.split("\n").map((line) => line.trim()).filter(Boolean);
    const message = await act("template/", {
      name: $("template-name").value.trim(),
      language: $("template-language").value.trim(),
      parameters,
    });
    if (message) addMessage(message);
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
    const open = state.conversations.get(state.openId);
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
        addMessage(event.message);
      }
    } else if (event.type === "contact") {
      applyContact(event.contact);
    } else if (event.type === "conversation_removed") {
      removeConversations(event.conversation_ids);
    }
  }

  function connect() {
    setConnection("connecting", "Connecting…");
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/ws/live/`);
    state.socket = socket;
    socket.addEventListener("open", () => {
      state.retries = 0;
      setConnection("live", "Live");
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

  refreshList().catch((error) => showError(error.message));
  connect();
})();
