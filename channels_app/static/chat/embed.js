// Embed the whatsbot web chat on any page:
//   <script src="https://YOUR-WHATSBOT-HOST/static/chat/embed.js" defer></script>
// The page's origin must be listed in WEBCHAT_ALLOWED_ORIGINS.
(() => {
  "use strict";
  const origin = new URL(document.currentScript.src).origin;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "💬";
  button.setAttribute("aria-label", "Chat with us");
  Object.assign(button.style, {
    position: "fixed", right: "20px", bottom: "20px", width: "56px", height: "56px", borderRadius: "50%",
    border: "0", background: "#075e54", color: "#fff", fontSize: "24px", cursor: "pointer", zIndex: 2147483646,
  });
  const frame = document.createElement("iframe");
  frame.src = `${origin}/chat/`;
  frame.title = "Chat with us";
  frame.hidden = true;
  Object.assign(frame.style, {
    position: "fixed", right: "20px", bottom: "88px", width: "360px", height: "520px", maxHeight: "80vh",
    border: "0", borderRadius: "12px", boxShadow: "0 8px 30px rgba(0,0,0,.25)", zIndex: 2147483647,
  });
  button.addEventListener("click", () => { frame.hidden = !frame.hidden; });
  document.body.append(frame, button);
})();
