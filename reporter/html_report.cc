#include "reporter/html_report.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "reporter/internal/utf8.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::reporter_internal::DecodeUtf8;
using ::taskfork::reporter_internal::kReplacement;

void AppendHtml(absl::string_view s, std::string* out) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0 || (cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f) {
      out->append(kReplacement.data(), kReplacement.size());
      i += n == 0 ? 1 : n;
      continue;
    }
    switch (s[i]) {
      case '&': out->append("&amp;"); break;
      case '<': out->append("&lt;"); break;
      case '>': out->append("&gt;"); break;
      case '"': out->append("&quot;"); break;
      case '\'': out->append("&#39;"); break;
      default: out->append(s.data() + i, n);
    }
    i += n;
  }
}

void AppendScriptJson(absl::string_view s, std::string* out) {
  reporter_internal::AppendJsonString(
      s, reporter_internal::JsonContext::kInlineScript, out);
}

absl::string_view Name(ResultCode code) {
  const auto r = ResultFromCode(code);
  return r ? ResultName(*r) : "none";
}

// Milliseconds from `origin` to `t`, or "null" when `t` is unset.
std::string Ms(const google::protobuf::Timestamp& t, absl::Time origin) {
  const absl::Time time = FromProtoTime(t);
  if (time == absl::InfinitePast()) return "null";
  return absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(time - origin));
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  const absl::Time time = FromProtoTime(t);
  if (time == absl::InfinitePast()) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%E3S UTC", time, absl::UTCTimeZone());
}

class Writer {
 public:
  Writer(const JobReport& report, const HtmlReportOptions& options)
      : report_(report), options_(options), origin_(Origin(report)) {}

  std::string Page();

 private:
  static absl::Time Origin(const JobReport& r) {
    absl::Time origin = FromProtoTime(r.starttime());
    for (const TaskReport& t : r.tasks()) {
      const absl::Time start = FromProtoTime(t.starttime());
      if (start != absl::InfinitePast() &&
          (origin == absl::InfinitePast() || start < origin)) {
        origin = start;
      }
    }
    return origin == absl::InfinitePast() ? absl::UnixEpoch() : origin;
  }

  void Key(absl::string_view key) {
    absl::StrAppend(&out_, "\"", key, "\":");
  }
  void Str(absl::string_view key, absl::string_view value) {
    Key(key);
    AppendScriptJson(value, &out_);
    out_.push_back(',');
  }
  void Raw(absl::string_view key, absl::string_view value) {
    Key(key);
    out_.append(value.data(), value.size());
    out_.push_back(',');
  }
  void CloseObject() {
    if (out_.back() == ',') out_.pop_back();
    out_.push_back('}');
  }
  void SummaryJson(const Summary& s) {
    absl::StrAppendFormat(&out_, "[%u,%u,%u,%u,%u,%u,%u,%u,%.2f]", s.passed(),
                          s.passx(), s.failed(), s.errored(), s.aborted(),
                          s.blocked(), s.skipped(), s.total(),
                          s.success_rate());
  }
  void SectionJson(const Section& s);
  void TaskJson(const TaskReport& t, int slot);
  void Data();
  void Header();
  void SummaryRow(absl::string_view label, const Summary& s);

  const JobReport& report_;
  const HtmlReportOptions& options_;
  const absl::Time origin_;
  std::string out_;
};

void Writer::SectionJson(const Section& s) {
  out_.push_back('{');
  if (!s.type().empty()) Str("t", s.type());
  Str("n", s.name());
  Str("r", Name(s.result().value()));
  if (!s.result().reason().empty()) Str("w", s.result().reason());
  if (!s.description().empty()) Str("x", s.description());
  Raw("s", Ms(s.starttime(), origin_));
  Raw("d", absl::StrFormat("%.6f", s.runtime()));
  if (!s.xref().file().empty()) {
    Str("f", s.xref().file());
    Raw("l", absl::StrCat(s.xref().line()));
  }
  if (s.pid() != 0) Raw("p", absl::StrCat(s.pid()));
  if (s.flaky()) Raw("k", "1");
  if (!s.sections().empty()) {
    Key("c");
    out_.push_back('[');
    for (const Section& child : s.sections()) {
      SectionJson(child);
      out_.push_back(',');
    }
    if (out_.back() == ',') out_.pop_back();
    out_.append("],");
  }
  CloseObject();
}

// The span of each child process of a task: the sections it reported.
struct ChildSpan {
  int64_t pid;
  absl::Time start = absl::InfiniteFuture();
  absl::Time stop = absl::InfinitePast();
};

void CollectSpans(const Section& s, int64_t task_pid,
                  std::vector<ChildSpan>* spans) {
  if (s.pid() != 0 && s.pid() != task_pid) {
    auto it = std::find_if(spans->begin(), spans->end(),
                           [&](const ChildSpan& c) { return c.pid == s.pid(); });
    if (it == spans->end()) it = spans->insert(spans->end(), {s.pid()});
    const absl::Time start = FromProtoTime(s.starttime());
    const absl::Time stop = FromProtoTime(s.stoptime());
    if (start != absl::InfinitePast()) it->start = std::min(it->start, start);
    if (stop != absl::InfinitePast()) it->stop = std::max(it->stop, stop);
  }
  for (const Section& child : s.sections()) CollectSpans(child, task_pid, spans);
}

void Writer::TaskJson(const TaskReport& t, int slot) {
  out_.push_back('{');
  Str("id", t.id());
  Str("name", t.name());
  if (!t.description().empty()) Str("desc", t.description());
  Raw("start", Ms(t.starttime(), origin_));
  Raw("stop", Ms(t.stoptime(), origin_));
  Raw("runtime", absl::StrFormat("%.6f", t.runtime()));
  Str("result", Name(t.result().value()));
  if (!t.result().reason().empty()) Str("reason", t.result().reason());
  if (t.flaky()) Raw("flaky", "1");
  if (t.attempts() > 1) Raw("attempts", absl::StrCat(t.attempts()));
  Raw("slot", absl::StrCat(slot));
  Key("summary");
  SummaryJson(t.summary());
  out_.push_back(',');
  // Logs of the task: its TaskLog and those of its forked children.
  const std::string log = absl::StrCat("TaskLog.", t.id());
  Key("logs");
  out_.push_back('[');
  bool first = true;
  for (const std::string& file : options_.log_files) {
    if (file == log || absl::StartsWith(file, absl::StrCat(log, ":"))) {
      if (!first) out_.push_back(',');
      first = false;
      AppendScriptJson(file, &out_);
    }
  }
  out_.append("],");
  // pids[0] is the task process (the first to report); the others are its
  // children, drawn inside its bar over the span of their sections.
  Key("pids");
  out_.push_back('[');
  for (int i = 0; i < t.pids_size(); ++i) {
    absl::StrAppend(&out_, i == 0 ? "" : ",", t.pids(i));
  }
  out_.append("],");
  std::vector<ChildSpan> spans;
  const int64_t task_pid = t.pids().empty() ? 0 : t.pids(0);
  for (const Section& s : t.sections()) CollectSpans(s, task_pid, &spans);
  Key("children");
  out_.push_back('[');
  first = true;
  for (const ChildSpan& c : spans) {
    if (c.start > c.stop) continue;
    if (!first) out_.push_back(',');
    first = false;
    absl::StrAppendFormat(&out_, "[%d,%.3f,%.3f]", c.pid,
                          absl::ToDoubleMilliseconds(c.start - origin_),
                          absl::ToDoubleMilliseconds(c.stop - origin_));
  }
  out_.append("],");
  Key("sections");
  out_.push_back('[');
  for (const Section& s : t.sections()) {
    SectionJson(s);
    out_.push_back(',');
  }
  if (out_.back() == ',') out_.pop_back();
  out_.append("],");
  CloseObject();
}

void Writer::Data() {
  out_.push_back('{');
  Key("job");
  out_.push_back('{');
  Str("id", report_.id());
  Str("name", report_.name());
  Raw("start", Ms(report_.starttime(), origin_));
  Raw("stop", Ms(report_.stoptime(), origin_));
  Str("result", Name(report_.result().value()));
  CloseObject();
  out_.push_back(',');
  Key("tasks");
  out_.push_back('[');
  const std::vector<int> slots = TimelineSlots(report_);
  for (int i = 0; i < report_.tasks_size(); ++i) {
    if (i != 0) out_.push_back(',');
    TaskJson(report_.tasks(i), slots[i]);
  }
  out_.append("]}");
}

void Writer::SummaryRow(absl::string_view label, const Summary& s) {
  absl::StrAppendFormat(
      &out_,
      "<tr><th>%s</th><td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
      "<td>%u</td><td>%u</td><td>%u</td><td>%.2f %%</td></tr>\n",
      label, s.passed(), s.passx(), s.failed(), s.errored(), s.aborted(),
      s.blocked(), s.skipped(), s.total(), s.success_rate());
}

void Writer::Header() {
  const auto field = [&](absl::string_view name, absl::string_view value) {
    absl::StrAppend(&out_, "<dt>", name, "</dt><dd>");
    AppendHtml(value, &out_);
    out_.append("</dd>");
  };
  const absl::string_view result = Name(report_.result().value());
  absl::StrAppend(&out_, "<header><h1>");
  AppendHtml(report_.name(), &out_);
  absl::StrAppend(&out_, " <span class=\"badge r-", result, "\">", result,
                  "</span></h1>\n<dl id=\"job\">");
  field("uid", report_.id());
  field("host", report_.host());
  field("submitter", report_.submitter());
  field("start", TimeText(report_.starttime()));
  field("stop", TimeText(report_.stoptime()));
  field("runtime", absl::StrFormat("%.3f s", report_.runtime()));
  field("tasks", absl::StrCat(report_.totaltasks()));
  std::vector<std::pair<std::string, std::string>> extra(
      report_.extra().begin(), report_.extra().end());
  std::sort(extra.begin(), extra.end());
  for (const auto& [k, v] : extra) field(HtmlEscape(k), v);
  out_.append("</dl></header>\n<table id=\"counts\"><tr><th></th>");
  for (absl::string_view name : {"passed", "passx", "failed", "errored",
                                 "aborted", "blocked", "skipped"}) {
    absl::StrAppend(&out_, "<th class=\"c-", name, "\">", name, "</th>");
  }
  out_.append("<th>total</th><th>success rate</th></tr>\n");
  SummaryRow("tasks", report_.task_summary());
  SummaryRow("sections", report_.summary());
  out_.append("</table>\n");
}

constexpr absl::string_view kStyle = R"css(
body{font:14px/1.4 "DejaVu Sans",sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 8px}
dl#job{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 12px}
dt{font-weight:bold}dd{margin:0;white-space:pre-wrap}
table#counts{border-collapse:collapse;margin-bottom:12px}
#counts td,#counts th{border:1px solid #ccc;padding:2px 8px;text-align:right}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.badge.flaky{background:#b8860b;margin-left:4px}
.r-passed{background:#2e7d32}.r-passx{background:#66bb6a}.r-failed{background:#d32f2f}
.r-errored{background:#f57c00}.r-aborted{background:#6a1b9a}.r-blocked{background:#8d6e63}
.r-skipped{background:#9e9e9e}.r-none{background:#bdbdbd}
#timeline{position:relative;border:1px solid #ccc;background:#fafafa;margin:4px 0 12px;overflow:hidden}
.bar{position:absolute;height:20px;min-width:2px;color:#fff;font-size:11px;line-height:20px;
 overflow:hidden;white-space:nowrap;padding-left:2px;box-sizing:border-box;cursor:pointer;border-right:1px solid #fff}
.bar.child{height:6px;background:#263238;opacity:.6;pointer-events:none;padding:0}
.bar.dim{opacity:.2}
#filters{margin:8px 0}#filters input[type=search]{width:20em}
details.task{border-top:1px solid #eee;padding:2px 0}
details.task[hidden]{display:none}
summary{cursor:pointer}
.sec{margin-left:18px}
.meta{color:#666;font-size:12px;margin-left:6px}
.reason{color:#b71c1c;white-space:pre-wrap;margin-left:6px}
.logs a{margin-right:10px}
button.more{margin:4px 18px}
)css";

constexpr absl::string_view kScript = R"js(
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var BAD = {failed: 1, errored: 1, aborted: 1, blocked: 1};
  var CHUNK = 500;
  var state = {failed: false, q: ''};
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function secs(s) {
    if (s < 1) return (s * 1000).toFixed(1) + ' ms';
    return s.toFixed(3) + ' s';
  }
  function badge(r) { return el('span', 'badge r-' + r, r); }
  function pct(ms, end) { return (100 * ms / end) + '%'; }

  function timeline() {
    var tl = document.getElementById('timeline');
    var end = 1, slots = 1;
    D.tasks.forEach(function (t) {
      if (t.stop !== null) end = Math.max(end, t.stop);
      slots = Math.max(slots, t.slot + 1);
    });
    tl.style.height = (slots * 26 + 4) + 'px';
    D.tasks.forEach(function (t) {
      var start = t.start === null ? 0 : t.start;
      var stop = t.stop === null ? start : t.stop;
      var b = el('div', 'bar task r-' + t.result, t.id);
      b.style.left = pct(start, end);
      b.style.width = pct(stop - start, end);
      b.style.top = (t.slot * 26 + 2) + 'px';
      b.title = t.id + ' ' + t.result + ' ' + secs(t.runtime);
      b.setAttribute('data-task', t.id);
      b.addEventListener('click', function () {
        t.node.hidden = false;
        t.node.open = true;
        t.node.scrollIntoView();
      });
      tl.appendChild(b);
      t.bar = b;
      t.children.forEach(function (c) {
        var cb = el('div', 'bar child');
        cb.style.left = pct(c[1], end);
        cb.style.width = pct(c[2] - c[1], end);
        cb.style.top = (t.slot * 26 + 16) + 'px';
        cb.title = 'pid ' + c[0];
        cb.setAttribute('data-pid', c[0]);
        tl.appendChild(cb);
      });
    });
    document.getElementById('span').textContent = secs(end / 1000);
  }

  function sectionRow(s, parent) {
    var row = el(s.c ? 'summary' : 'div', s.c ? '' : 'leaf');
    row.appendChild(badge(s.r));
    if (s.k) row.appendChild(el('span', 'badge flaky', 'flaky'));
    row.appendChild(el('span', 'meta', s.t || ''));
    row.appendChild(document.createTextNode(' ' + s.n));
    row.appendChild(el('span', 'meta', secs(s.d) + (s.f ? '  ' + s.f + ':' + s.l : '') +
                                        (s.p ? '  pid ' + s.p : '')));
    if (s.w) row.appendChild(el('span', 'reason', s.w));
    if (s.x) row.appendChild(el('div', 'meta', s.x));
    parent.appendChild(row);
  }
  function visible(list) {
    if (!state.failed) return list;
    return list.filter(function (s) { return BAD[s.r]; });
  }
  function renderSections(list, container, from) {
    var shown = visible(list);
    var to = Math.min(shown.length, from + CHUNK);
    for (var i = from; i < to; i++) {
      var s = shown[i];
      var node;
      if (s.c) {
        node = el('details', 'sec');
        sectionRow(s, node);
        (function (s, node) {
          node.addEventListener('toggle', function () {
            if (node.open && !node.rendered) {
              node.rendered = true;
              renderSections(s.c, node, 0);
            }
          });
        })(s, node);
      } else {
        node = el('div', 'sec');
        sectionRow(s, node);
      }
      container.appendChild(node);
    }
    if (to < shown.length) {
      var more = el('button', 'more', 'show ' + Math.min(CHUNK, shown.length - to) +
                    ' more of ' + (shown.length - to));
      more.addEventListener('click', function () {
        more.remove();
        renderSections(list, container, to);
      });
      container.appendChild(more);
    }
  }
  function renderBody(t) {
    var body = t.body;
    body.textContent = '';
    if (t.desc) body.appendChild(el('div', 'meta', t.desc));
    if (t.reason) body.appendChild(el('div', 'reason', t.reason));
    var logs = el('div', 'logs');
    logs.appendChild(el('span', 'meta', 'logs: '));
    t.logs.forEach(function (name) {
      var a = el('a', '', name);
      a.href = './' + encodeURIComponent(name);
      logs.appendChild(a);
    });
    logs.appendChild(el('span', 'meta', 'pids ' + t.pids.join(' ')));
    body.appendChild(logs);
    renderSections(t.sections, body, 0);
  }
  function tasks() {
    var list = document.getElementById('tasks');
    D.tasks.forEach(function (t) {
      var d = el('details', 'task');
      d.setAttribute('data-task', t.id);
      d.setAttribute('data-result', t.result);
      var s = el('summary');
      s.appendChild(badge(t.result));
      if (t.flaky) s.appendChild(el('span', 'badge flaky', 'flaky'));
      s.appendChild(document.createTextNode(' ' + t.id));
      if (t.attempts) s.appendChild(el('span', 'meta', t.attempts + ' attempts'));
      if (t.name && t.name !== t.id) s.appendChild(el('span', 'meta', t.name));
      var c = t.summary;
      s.appendChild(el('span', 'meta', secs(t.runtime) + '  sections ' + c[7] +
                       ': ' + c[0] + ' passed, ' + (c[2] + c[3] + c[4]) +
                       ' failed/errored/aborted, ' + c[8].toFixed(2) + ' %'));
      if (t.reason) s.appendChild(el('span', 'reason', t.reason));
      d.appendChild(s);
      t.body = el('div');
      d.appendChild(t.body);
      d.addEventListener('toggle', function () {
        if (d.open && !t.rendered) { t.rendered = true; renderBody(t); }
      });
      list.appendChild(d);
      t.node = d;
    });
  }

  function names(list, out) {
    list.forEach(function (s) {
      out.push(s.n.toLowerCase());
      if (s.c) names(s.c, out);
    });
    return out;
  }
  function matches(t, q) {
    if (!q) return true;
    if (t.id.toLowerCase().indexOf(q) >= 0 || t.name.toLowerCase().indexOf(q) >= 0) return true;
    if (!t.names) t.names = names(t.sections, []);
    return t.names.some(function (n) { return n.indexOf(q) >= 0; });
  }
  function apply() {
    var q = state.q.toLowerCase(), shown = 0;
    D.tasks.forEach(function (t) {
      var show = (!state.failed || BAD[t.result]) && matches(t, q);
      t.node.hidden = !show;
      t.bar.classList.toggle('dim', !show);
      if (show) shown++;
      if (t.rendered) renderBody(t);
    });
    document.getElementById('shown').textContent = shown + ' of ' + D.tasks.length + ' tasks shown';
  }
  function fromHash() {
    var open = [];
    location.hash.replace(/^#/, '').split('&').forEach(function (p) {
      var kv = p.split('=');
      var v = decodeURIComponent(kv.slice(1).join('='));
      if (kv[0] === 'failed') state.failed = true;
      if (kv[0] === 'q') state.q = v;
      if (kv[0] === 'open') open = v.split(',');
    });
    document.getElementById('failed').checked = state.failed;
    document.getElementById('q').value = state.q;
    return open;
  }

  timeline();
  tasks();
  var open = fromHash();
  document.getElementById('failed').addEventListener('change', function (e) {
    state.failed = e.target.checked; apply();
  });
  document.getElementById('q').addEventListener('input', function (e) {
    state.q = e.target.value; apply();
  });
  apply();
  D.tasks.forEach(function (t) {
    if (open.indexOf(t.id) >= 0) { t.node.open = true; t.rendered = true; renderBody(t); }
  });
  document.body.setAttribute('data-render-ms', performance.now().toFixed(1));
})();
)js";

std::string Writer::Page() {
  out_.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
              "<title>");
  AppendHtml(report_.name(), &out_);
  out_.append(" ");
  AppendHtml(report_.id(), &out_);
  out_.append(" - taskfork report</title>\n<style>");
  out_.append(kStyle.data(), kStyle.size());
  out_.append("</style></head>\n<body>\n");
  Header();
  out_.append(
      "<h2>Timeline <span class=\"meta\" id=\"span\"></span></h2>\n"
      "<div id=\"timeline\"></div>\n"
      "<div id=\"filters\"><label><input type=\"checkbox\" id=\"failed\"> failed only"
      "</label> <input type=\"search\" id=\"q\" placeholder=\"search task or section name\">"
      " <span class=\"meta\" id=\"shown\"></span></div>\n<div id=\"tasks\"></div>\n"
      "<script type=\"application/json\" id=\"report-data\">");
  Data();
  out_.append("</script>\n<script>");
  out_.append(kScript.data(), kScript.size());
  out_.append("</script>\n</body></html>\n");
  return std::move(out_);
}

}  // namespace

std::string HtmlEscape(absl::string_view s) {
  std::string out;
  AppendHtml(s, &out);
  return out;
}

std::string ScriptJsonString(absl::string_view s) {
  std::string out;
  AppendScriptJson(s, &out);
  return out;
}

std::vector<int> TimelineSlots(const JobReport& report) {
  const int n = report.tasks_size();
  std::vector<int> slots(n, 0);
  std::vector<int> order;
  for (int i = 0; i < n; ++i) {
    if (FromProtoTime(report.tasks(i).starttime()) != absl::InfinitePast()) {
      order.push_back(i);
    }
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return FromProtoTime(report.tasks(a).starttime()) <
           FromProtoTime(report.tasks(b).starttime());
  });
  std::vector<absl::Time> free_at;  // per slot: when its last task stopped
  for (int i : order) {
    const TaskReport& t = report.tasks(i);
    const absl::Time start = FromProtoTime(t.starttime());
    absl::Time stop = FromProtoTime(t.stoptime());
    if (stop < start) stop = absl::InfiniteFuture();  // still running
    size_t slot = 0;
    while (slot < free_at.size() && free_at[slot] > start) ++slot;
    if (slot == free_at.size()) free_at.push_back(stop);
    free_at[slot] = stop;
    slots[i] = static_cast<int>(slot);
  }
  return slots;
}

absl::StatusOr<std::vector<std::string>> ListLogFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoError(errno, "opendir", dir);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const absl::string_view name = e->d_name;
    if (absl::StartsWith(name, "TaskLog.") || absl::StartsWith(name, "JobLog.")) {
      names.emplace_back(name);
    }
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string HtmlReport(const JobReport& report,
                       const HtmlReportOptions& options) {
  return Writer(report, options).Page();
}

}  // namespace taskfork::reporter
