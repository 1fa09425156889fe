// The settings screen: reads initData from Telegram.WebApp, talks to /app/api, renders state.
(function () {
  "use strict";

  const PREVIEW_DELAY_MS = 350; // debounce: one preview request once typing pauses
  const PREVIEW_ALIASES = 8; // names of a catalogue topic the preview lists
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const tg = window.Telegram && window.Telegram.WebApp ? window.Telegram.WebApp : null;
  const initData = tg && typeof tg.initData === "string" ? tg.initData : "";
  const $ = (id) => document.getElementById(id);

  let state = null;
  let lang = guessLanguage();
  let previewSeq = 0;
  let previewTimer = null;

  function guessLanguage() {
    const user = tg && tg.initDataUnsafe && tg.initDataUnsafe.user;
    const code = (user && user.language_code) || navigator.language || "en";
    return code.toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function tr(key, params) {
    const template = (data.texts[lang] && data.texts[lang][key]) || data.texts.en[key] || key;
    return template.replace(/\{(\w+)\}/g, (whole, name) =>
      params && name in params ? String(params[name]) : whole
    );
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch("app/api/" + path, {
        method: method,
        headers: { Authorization: "tma " + initData, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, tr("app_error_network"));
    }
    let answer = {};
    try {
      answer = await response.json();
    } catch (err) {
      answer = {};
    }
    if (!response.ok) {
      let reason = answer.error || response.statusText;
      if (response.status === 401) {
        // nothing proves who asks, so the server names the reason's key: said in our language
        const known = answer.key && data.texts.en[answer.key] ? tr(answer.key) : reason;
        reason = tr("app_error_auth", { reason: known });
      }
      throw new ApiError(response.status, reason);
    }
    return answer;
  }

  function notify(text, kind) {
    const notice = $("notice");
    notice.removeAttribute("data-text");
    notice.textContent = text;
    notice.className = "notice" + (kind ? " " + kind : "");
    notice.hidden = !text;
  }

  function fail(err) {
    notify(err.message, "error");
    if (err.status === 401) {
      document.body.classList.add("locked");
    }
  }

  // --- rendering --------------------------------------------------------------------------

  function applyTexts() {
    document.documentElement.lang = lang === "zh" ? "zh-Hant" : "en";
    document.title = tr("app_title");
    document.querySelectorAll("[data-text]").forEach((el) => {
      el.textContent = tr(el.dataset.text);
    });
    document.querySelectorAll("[data-placeholder]").forEach((el) => {
      el.placeholder = tr(el.dataset.placeholder);
    });
    const weekday = $("weekday");
    const chosen = weekday.value;
    weekday.replaceChildren();
    for (let n = 0; n < 7; n += 1) {
      weekday.append(new Option(tr("weekday_" + n), String(n)));
    }
    weekday.value = chosen || "0";
  }

  function deviceZone() {
    try {
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      return data.timezones.includes(zone) ? zone : null;
    } catch (err) {
      return null;
    }
  }

  function renderTopics() {
    const list = $("topics");
    list.replaceChildren();
    for (const item of state.subscriptions) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = item.label;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "✕";
      remove.setAttribute("aria-label", tr("app_remove", { label: item.label }));
      remove.title = remove.getAttribute("aria-label");
      remove.addEventListener("click", () => removeTopic(item.id, li));
      li.append(label, remove);
      list.append(li);
    }
    $("topics-none").hidden = state.subscriptions.length > 0;
  }

  function render() {
    lang = state.language;
    applyTexts();
    renderTopics();
    document.querySelectorAll('input[name="frequency"]').forEach((el) => {
      el.checked = el.value === state.frequency;
    });
    document.querySelectorAll('input[name="language"]').forEach((el) => {
      el.checked = el.value === state.language;
    });
    $("weekday").value = String(state.weekday);
    $("weekday-row").hidden = state.frequency !== "weekly";
    $("time-row").hidden = state.frequency === "instant";
    $("time").value = state.time;
    $("paused").checked = state.paused;
    const suggested = state.timezone_is_default ? deviceZone() : null;
    const suggest = suggested !== null && suggested !== state.timezone;
    $("timezone").value = suggest ? suggested : state.timezone;
    $("timezone-hint").hidden = !suggest;
    $("timezone-save").classList.toggle("primary", suggest);
  }

  function show(answer) {
    state = answer;
    render();
  }

  // --- actions ----------------------------------------------------------------------------

  async function save(change) {
    try {
      show(await api("PATCH", "settings", change));
      notify(tr("app_saved"), "ok");
    } catch (err) {
      fail(err);
      if (state) {
        render(); // the controls show what is really saved
      }
    }
  }

  async function removeTopic(id, li) {
    li.classList.add("busy");
    try {
      show(await api("DELETE", "subscriptions/" + id));
      notify("", null);
    } catch (err) {
      li.classList.remove("busy");
      fail(err);
    }
  }

  function renderPreview(answer) {
    const box = $("preview");
    box.replaceChildren();
    box.className = "preview";
    const means = document.createElement("p");
    means.className = "means";
    means.textContent = tr("app_preview_means", { label: answer.label });
    box.append(means);
    if (answer.aliases.length) {
      const aliases = document.createElement("p");
      aliases.className = "hint";
      // a catalogue topic has dozens of names: the first few say what it is
      const shown = answer.aliases.slice(0, PREVIEW_ALIASES);
      const more = answer.aliases.length > shown.length ? ", …" : "";
      aliases.textContent = tr("subscribed_aliases", { aliases: shown.join(", ") + more });
      box.append(aliases);
    }
    const heading = document.createElement("p");
    heading.className = "hint";
    heading.textContent = tr(answer.recent.length ? "app_preview_recent" : "app_preview_none");
    box.append(heading);
    if (answer.recent.length) {
      const list = document.createElement("ul");
      for (const release of answer.recent) {
        const li = document.createElement("li");
        const link = document.createElement("a");
        link.href = release.link;
        link.textContent = release.title;
        link.target = "_blank";
        link.rel = "noopener";
        link.addEventListener("click", (event) => {
          if (tg && typeof tg.openLink === "function") {
            event.preventDefault();
            tg.openLink(release.link);
          }
        });
        const date = document.createElement("span");
        date.className = "date";
        date.textContent = release.date;
        li.append(link, " ", date);
        list.append(li);
      }
      box.append(list);
    }
    box.hidden = false;
  }

  function previewError(message) {
    const box = $("preview");
    box.className = "preview error";
    box.textContent = message;
    box.hidden = false;
  }

  async function runPreview() {
    const text = $("topic-input").value;
    const seq = ++previewSeq;
    if (!text.trim()) {
      $("preview").hidden = true;
      return;
    }
    try {
      const answer = await api("POST", "preview", { query: text });
      if (seq === previewSeq) {
        renderPreview(answer);
      }
    } catch (err) {
      if (seq === previewSeq) {
        if (err.status === 401) {
          fail(err);
        } else {
          previewError(err.message);
        }
      }
    }
  }

  async function addTopic(event) {
    event.preventDefault();
    const input = $("topic-input");
    if (!input.value.trim()) {
      return;
    }
    clearTimeout(previewTimer);
    previewSeq += 1; // a preview still on its way is stale now
    $("add-button").disabled = true;
    try {
      show(await api("POST", "subscriptions", { query: input.value }));
      input.value = "";
      $("preview").hidden = true;
      notify("", null);
    } catch (err) {
      if (err.status === 401) {
        fail(err);
      } else {
        previewError(err.message);
      }
    } finally {
      $("add-button").disabled = false;
    }
  }

  function wire() {
    $("add-form").addEventListener("submit", addTopic);
    $("topic-input").addEventListener("input", () => {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(runPreview, PREVIEW_DELAY_MS);
    });
    document.querySelectorAll('input[name="frequency"]').forEach((el) => {
      el.addEventListener("change", () =>
        save({ frequency: el.value, weekday: Number($("weekday").value) })
      );
    });
    $("weekday").addEventListener("change", () =>
      save({ frequency: "weekly", weekday: Number($("weekday").value) })
    );
    $("time").addEventListener("change", () => {
      if ($("time").value) {
        save({ time: $("time").value });
      }
    });
    $("timezone-save").addEventListener("click", () => save({ timezone: $("timezone").value }));
    document.querySelectorAll('input[name="language"]').forEach((el) => {
      el.addEventListener("change", () => save({ language: el.value }));
    });
    $("paused").addEventListener("change", () => save({ paused: $("paused").checked }));
  }

  async function start() {
    const zones = $("timezones");
    for (const zone of data.timezones) {
      zones.append(new Option(zone.replace(/_/g, " "), zone));
    }
    applyTexts();
    wire();
    if (tg) {
      tg.ready();
      if (typeof tg.expand === "function") {
        tg.expand();
      }
    }
    try {
      show(await api("GET", "state"));
      notify("", null);
    } catch (err) {
      fail(err);
    }
  }

  start();
})();
