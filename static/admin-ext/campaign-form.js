/* The campaign form, made quicker to use; without this file every part still works as a plain form.
   - Channels: up / down buttons reorder the rows and renumber their places (hidden, still submitted),
     and a channel ticked or unticked moves to the end of the chosen ones.
   - Next runs: while the schedule fields change, the panel asks the admin's schedule-preview view for the
     next five runs of what is typed (before saving) and redraws itself, or shows each field's reason;
     it sends the browser's zone too, to show the starts on the marketer's own clock.
   No dependencies; loaded as the channel picker's form media (campaigns/admin_fields.py). */
(function () {
    "use strict";

    // --- Channels in order ---------------------------------------------------------------------------

    function rows(list) {
        return Array.prototype.slice.call(list.querySelectorAll(":scope > .ie-order__row"));
    }

    function renumber(list) {
        rows(list).forEach(function (row, index) {
            row.querySelector("input[type=number]").value = String(index + 1);
        });
    }

    function ticked(row) {
        return row.querySelector("input[type=checkbox]").checked;
    }

    function button(text, label, onClick) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "ie-order__move";
        b.textContent = text;
        b.title = label;
        b.setAttribute("aria-label", label);
        b.addEventListener("click", onClick);
        return b;
    }

    function setUpOrder(list) {
        list.classList.add("ie-order--js");
        rows(list).forEach(function (row) {
            var name = row.querySelector("label").textContent;
            row.appendChild(button("↑", "Move " + name + " up", function () {
                var before = row.previousElementSibling;
                if (before) { list.insertBefore(row, before); }
                renumber(list);
            }));
            row.appendChild(button("↓", "Move " + name + " down", function () {
                var after = row.nextElementSibling;
                if (after) { list.insertBefore(after, row); }
                renumber(list);
            }));
            row.querySelector("input[type=checkbox]").addEventListener("change", function () {
                // The row goes right after the last chosen channel: last in the fallback order when
                // ticked, first of the unused ones when unticked.
                var others = rows(list).filter(function (r) { return r !== row && ticked(r); });
                var last = others[others.length - 1];
                list.insertBefore(row, last ? last.nextElementSibling : list.firstElementChild);
                renumber(list);
            });
        });
        renumber(list);
    }

    // --- Next runs, before saving ----------------------------------------------------------------------

    var SCHEDULE_FIELDS = ["kind", "send_at_0", "send_at_1", "send_local_time", "cron", "schedule_timezone", "segment"];

    function element(tag, className, text) {
        var e = document.createElement(tag);
        if (className) { e.className = className; }
        if (text !== undefined) { e.textContent = text; }
        return e;
    }

    function drawRuns(body, answer) {
        var hint = answer.send_local_time
            ? "When each of the next runs starts in the schedule's zone, and when it reaches a shopper in the zones most common in the audience (at " + answer.send_local_time + " on their own clock)."
            : "When each of the next runs starts in the schedule's zone, and when it reaches a shopper in the zones most common in the audience.";
        if (!answer.shopper_zones.length) {
            hint += " Choose a segment whose shoppers have time zones to see them here.";
        }
        body.appendChild(element("p", "ie-panel__hint", hint + " Not saved yet: updated as you type."));
        var table = element("table", "ie-schedule__runs");
        var head = element("tr");
        head.appendChild(element("th", "", "Starts (" + answer.zone + ")"));
        if (answer.viewer_zone) {
            head.appendChild(element("th", "", "On your clock (" + answer.viewer_zone + ")"));
        }
        answer.shopper_zones.forEach(function (zone) {
            head.appendChild(element("th", "", "Reaches a shopper in " + zone));
        });
        table.appendChild(element("thead")).appendChild(head);
        var tbody = table.appendChild(element("tbody"));
        answer.runs.forEach(function (run) {
            var tr = tbody.appendChild(element("tr"));
            var start = tr.appendChild(element("td", "", run.start_text));
            start.dataset.at = run.start;
            if (answer.viewer_zone) { tr.appendChild(element("td", "", run.start_viewer_text)); }
            run.reaches.forEach(function (reach) {
                var td = tr.appendChild(element("td", "", reach.text));
                td.dataset.at = reach.at;
                td.dataset.zone = reach.zone;
            });
        });
        body.appendChild(table);
    }

    function drawErrors(body, error) {
        body.appendChild(element("p", "ie-panel__hint", "This schedule cannot run yet:"));
        var list = body.appendChild(element("ul", "ie-schedule__errors"));
        Object.keys(error.details || {}).forEach(function (field) {
            error.details[field].forEach(function (reason) {
                var item = list.appendChild(element("li", "ie-error", field.replace(/_/g, " ") + ": " + reason));
                item.dataset.field = field;
            });
        });
        if (!list.children.length) { list.appendChild(element("li", "ie-error", error.message)); }
    }

    function setUpSchedule(panel, form) {
        var url = panel.getAttribute("data-preview-url");
        var kind = form.elements.kind;
        if (!url || !kind || kind.tagName !== "SELECT") { return; }  // read-only page: nothing to edit
        var cron = form.elements.cron;
        var fieldset = cron && cron.closest("fieldset");
        if (fieldset) {
            (fieldset.querySelector("details") || fieldset).appendChild(panel);
        }
        var body = panel.querySelector(".ie-panel__body");
        var asked = 0;
        var timer = null;

        var sent = null;

        function query() {
            var values = new URLSearchParams();
            SCHEDULE_FIELDS.forEach(function (name) {
                var field = form.elements[name];
                if (field && field.value !== undefined) { values.set(name, field.value); }
            });
            try {
                values.set("viewer_zone", Intl.DateTimeFormat().resolvedOptions().timeZone || "");
            } catch (e) { /* an old browser: the schedule's zone only */ }
            return values.toString();
        }

        function load() {
            var asking = query();
            if (asking === sent) { return; }  // nothing changed since the last question
            sent = asking;
            var mine = ++asked;
            panel.setAttribute("aria-busy", "true");
            fetch(url + "?" + asking, { credentials: "same-origin", headers: { Accept: "application/json" } })
                .then(function (response) {
                    return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
                })
                .then(function (result) {
                    if (mine !== asked) { return; }  // an older answer arriving late
                    panel.removeAttribute("aria-busy");
                    body.textContent = "";
                    if (!result.ok) {
                        panel.hidden = false;
                        drawErrors(body, result.answer.error || { message: "The preview failed." });
                        return;
                    }
                    panel.hidden = !result.answer.scheduled;
                    if (!result.answer.scheduled) { return; }
                    if (result.answer.problem) {
                        body.appendChild(element("p", "ie-panel__hint", result.answer.problem + "."));
                        return;
                    }
                    drawRuns(body, result.answer);
                })
                .catch(function () {
                    if (mine !== asked) { return; }
                    sent = null;  // ask again at the next change
                    panel.removeAttribute("aria-busy");
                    body.textContent = "";
                    body.appendChild(element("p", "ie-error", "The preview could not be loaded; save to see the next runs."));
                });
        }

        function later(event) {
            if (SCHEDULE_FIELDS.indexOf(event.target.name) === -1) { return; }
            if (event.target.name === "kind" && event.target.value === "scheduled" && fieldset) {
                var details = fieldset.querySelector("details");
                if (details) { details.open = true; }
            }
            window.clearTimeout(timer);
            timer = window.setTimeout(load, 300);
        }

        form.addEventListener("input", later);
        form.addEventListener("change", later);
        // The admin's calendar and clock shortcuts (Today, Now, a picked day) set the boxes without an
        // input or change event: after any click, look whether a schedule field moved.
        document.addEventListener("click", function () {
            window.clearTimeout(timer);
            timer = window.setTimeout(load, 300);
        });
        load();
    }

    document.addEventListener("DOMContentLoaded", function () {
        document.querySelectorAll(".ie-order").forEach(setUpOrder);
        var panel = document.getElementById("ie-schedule");
        var form = document.getElementById("campaign_form");
        if (panel && form) { setUpSchedule(panel, form); }
    });
})();
