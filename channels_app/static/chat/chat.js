// The customer side of a chat: the WhatsApp simulator and the web chat widget share it.
// Every text is rendered with textContent: nothing a customer or the model writes is HTML.
(() => {
  "use strict";
  const body = document.body;
  const mode = body.dataset.mode;
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const input = document.getElementById("text");
  const connection = document.getElementById("connection");
  const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
  const TICKS = { pending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };
  const unread = [];
  // Receipts can beat the answer that tells a bubble its id: keep them until the id is known.
  const earlyReceipts = new Map();
  let socket = null;
  let attempt = 0;

  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);

  function bubble({ id, text, mine, status, media }) {
    const item = document.createElement("li");
    item.className = mine ? "msg mine" : "msg theirs";
    item.dataset.id = id;
    if (media) item.append(mediaNode(media));
    const words = document.createElement("p");
    words.textContent = text;
    if (text || !media) item.append(words);
    if (mine) {
      const ticks = document.createElement("span");
      ticks.className = "ticks";
      item.append(ticks);
    }
    list.append(item);
    if (mine) setStatus(item, status || "pending");
    item.scrollIntoView({ block: "end" });
    return item;
  }

  // A file the business sent (the simulator shows it from its own host; same-origin paths only).
  function mediaNode(media) {
    const url = typeof media.url === "string" && media.url.startsWith("/") ? media.url : "";
    if (media.kind === "image") {
      const image = document.createElement("img");
      image.className = "media";
      image.src = url;
      image.alt = "Image";
      return image;
    }
    const link = document.createElement("a");
    link.className = "media-link";
    link.href = url;
    link.textContent = `📄 ${media.filename || "Document"}`;
    link.setAttribute("download", media.filename || "");
    return link;
  }

  function setStatus(item, status) {
    if (!item) return;
    item.dataset.status = status;
    const ticks = item.querySelector(".ticks");
    if (ticks) ticks.textContent = TICKS[status] || "";
  }

  const findMine = (id) => list.querySelector(`li.mine[data-id="${CSS.escape(id)}"]`);

  function receipt(message, status) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "receipt", id: message.id, client_ref: message.client_ref || "", status }));
    }
  }

  // "typing…" under the name, as WhatsApp shows it: until a message arrives, at most 25 s.
  let typingTimer = null;
  function showTyping() {
    document.body.classList.add("typing");
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(() => document.body.classList.remove("typing"), 25000);
  }

  function receive(message) {
    document.body.classList.remove("typing");
    if (list.querySelector(`li[data-id="${CSS.escape(message.id)}"]`)) return;
    bubble({ id: message.id, text: message.text, mine: false, media: message.media });
    receipt(message, "delivered");
    if (document.visibilityState === "visible") receipt(message, "read");
    else unread.push(message);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") unread.splice(0).forEach((m) => receipt(m, "read"));
  });

  function handle(event) {
    if (event.type === "message") receive(event);
    else if (event.type === "receipt") {
      const item = findMine(event.id);
      if (item) setStatus(item, event.status);
      else earlyReceipts.set(event.id, event.status);
    }
    else if (event.type === "typing") showTyping();
    else if (event.type === "accepted") setStatus(findMine(event.id), "sent");
    else if (event.type === "history") {
      list.replaceChildren();
      event.messages.forEach((m) =>
        m.direction === "in" ? bubble({ id: m.id, text: m.text, mine: true, status: "sent" }) : receive(m),
      );
    }
  }

  function connect(path) {
    socket = new WebSocket(wsBase + path);
    socket.onopen = () => {
      attempt = 0;
      connection.textContent = "online";
    };
    socket.onmessage = (e) => handle(JSON.parse(e.data));
    socket.onclose = (e) => {
      if (e.code === 4401 || e.code === 4403) {
        connection.textContent = "not allowed";
        return;
      }
      connection.textContent = "reconnecting…";
      setTimeout(() => connect(path), Math.min(30000, 500 * 2 ** attempt++));
    };
  }

  // --- The simulator: one simulated customer per tab, writing through the real webhook.
  function startSimulator() {
    const form = document.getElementById("customer");
    const quick = document.getElementById("quick-actions");
    const saved = JSON.parse(sessionStorage.getItem("whatsbot.simulator.customer") || "null");
    const names = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Linus Pauling"];
    document.getElementById("customer-name").value = saved ? saved.name : names[Math.floor(Math.random() * names.length)];
    document.getElementById("customer-phone").value =
      saved ? saved.phone : `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
    let customer = null;

    function begin(chosen) {
      customer = chosen;
      sessionStorage.setItem("whatsbot.simulator.customer", JSON.stringify(customer));
      form.hidden = true;
      quick.hidden = false;
      composer.hidden = false;
      connect(`/ws/simulator/${customer.id}/`);
    }

    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const token = newId().replace(/[^A-Za-z0-9]/g, "").slice(0, 24);
      begin({
        id: saved ? saved.id : `SIM.${token}`,
        name: document.getElementById("customer-name").value.trim(),
        phone: document.getElementById("customer-phone").value.trim(),
      });
    });
    composer.hidden = true;
    if (saved) begin(saved);

    async function send(fields, shown) {
      const item = bubble({ id: newId(), text: shown, mine: true });
      // Multipart: the same form carries a voice note or a photo when there is one.
      const form = new FormData();
      Object.entries({ customer_id: customer.id, phone_number: customer.phone, name: customer.name, ...fields })
        .forEach(([key, value]) => form.append(key, value));
      const response = await fetch("/simulator/api/messages/", {
        method: "POST",
        headers: { "X-CSRFToken": body.dataset.csrf },
        credentials: "same-origin",
        body: form,
      });
      if (!response.ok) return setStatus(item, "failed");
      const { id } = await response.json();
      item.dataset.id = id;
      setStatus(item, earlyReceipts.get(id) || "sent");
      earlyReceipts.delete(id);
    }

    composer.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      send({ type: "text", text }, text);
    });
    [["voice-file", "voice", "🎤 Voice note"], ["photo-file", "photo", "📷 Photo"]].forEach(([inputId, type, label]) => {
      const picker = document.getElementById(inputId);
      picker.addEventListener("change", () => {
        const file = picker.files[0];
        if (file) send({ type, file }, `${label}: ${file.name}`);
        picker.value = "";
      });
    });
    quick.addEventListener("click", (e) => {
      const action = e.target.closest("button")?.dataset;
      if (!action) return;
      if (action.action === "location") {
        send({ type: "location", latitude: 41.8902, longitude: 12.4922, place: "Colosseum, Rome" }, "📍 Colosseum, Rome");
      } else {
        send({ type: "button", text: action.text }, action.text);
      }
    });
  }

  // --- The web chat widget: the visitor is known by a signed cookie, messages go over the socket.
  function startWebchat() {
    const conversation = body.dataset.conversation;
    connect(conversation ? `/ws/chat/${conversation}/` : "/ws/chat/");
    composer.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text || !socket || socket.readyState !== WebSocket.OPEN) return;
      const id = newId();
      bubble({ id, text, mine: true });
      socket.send(JSON.stringify({ type: "message", id, text }));
      input.value = "";
    });
  }

  if (mode === "simulator") startSimulator();
  else startWebchat();
})();
