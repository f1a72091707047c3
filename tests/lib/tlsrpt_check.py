"""Checks of SMTP TLS reports (RFC 8460) against the RFC itself, for the
unit and end-to-end tests: the JSON's fields and types (4.4) and the
message that carries it (5.3), read with python3's json, gzip and email
only.

    problems = report_problems(obj)          # [] when it is right
    msg, obj, fname = read_message(raw_bytes)  # or raises ValueError
"""

import email
import email.policy
import gzip
import json
import re

# RFC 8460 4.3.
RESULT_TYPES = {
    "starttls-not-supported", "certificate-host-mismatch",
    "certificate-expired", "certificate-not-trusted", "validation-failure",
    "tlsa-invalid", "dnssec-invalid", "dane-required",
    "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}
POLICY_TYPES = {"tlsa", "sts", "no-policy-found"}
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"
                      r"(Z|[+-]\d\d:\d\d)$")
# 5.3.1: sender "!" policy-domain "!" begin "!" end ["!" unique-id] "." ext
FILENAME = re.compile(r"^([^!]+)!([^!]+)!(\d+)!(\d+)(![A-Za-z0-9]+)?"
                      r"\.json\.gz$")

# 4.4: field -> (type, required)
TOP = {"organization-name": (str, True), "date-range": (dict, True),
       "contact-info": (str, True), "report-id": (str, True),
       "policies": (list, True)}
POLICY = {"policy-type": (str, True), "policy-string": (list, False),
          "policy-domain": (str, True), "mx-host": (list, False)}
SUMMARY = {"total-successful-session-count": (int, True),
           "total-failure-session-count": (int, True)}
DETAIL = {"result-type": (str, True), "sending-mta-ip": (str, False),
          "receiving-mx-hostname": (str, False),
          "receiving-mx-helo": (str, False), "receiving-ip": (str, False),
          "failed-session-count": (int, True),
          "additional-information": (str, False),
          "failure-reason-code": (str, False)}


def _fields(obj, spec, where, problems):
    if not isinstance(obj, dict):
        problems.append("%s: not an object" % where)
        return
    for key, (typ, required) in spec.items():
        if key not in obj:
            if required:
                problems.append("%s: %s missing" % (where, key))
            continue
        v = obj[key]
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)
                           or v < 0):
            problems.append("%s: %s is not a count: %r" % (where, key, v))
        elif not isinstance(v, typ):
            problems.append("%s: %s is not %s: %r"
                            % (where, key, typ.__name__, v))
    for key in obj:
        if key not in spec:
            problems.append("%s: unknown field %s" % (where, key))


def report_problems(obj):
    """What is wrong with a parsed report, as a list of strings."""
    p = []
    _fields(obj, TOP, "report", p)
    if p:
        return p
    dr = obj["date-range"]
    _fields(dr, {"start-datetime": (str, True), "end-datetime": (str, True)},
            "date-range", p)
    for k in ("start-datetime", "end-datetime"):
        if isinstance(dr.get(k), str) and not DATETIME.match(dr[k]):
            p.append("date-range: %s is not RFC 3339: %s" % (k, dr[k]))
    for i, pol in enumerate(obj["policies"]):
        where = "policies[%d]" % i
        _fields(pol, {"policy": (dict, True), "summary": (dict, True),
                      "failure-details": (list, False)}, where, p)
        if not isinstance(pol, dict):
            continue
        _fields(pol.get("policy", {}), POLICY, where + ".policy", p)
        pt = pol.get("policy", {}).get("policy-type")
        if pt not in POLICY_TYPES:
            p.append("%s: policy-type %r" % (where, pt))
        for k in ("policy-string", "mx-host"):
            v = pol.get("policy", {}).get(k, [])
            if isinstance(v, list) and not all(isinstance(s, str) for s in v):
                p.append("%s: %s holds a non-string" % (where, k))
        _fields(pol.get("summary", {}), SUMMARY, where + ".summary", p)
        failed = 0
        for j, d in enumerate(pol.get("failure-details", [])):
            dw = "%s.failure-details[%d]" % (where, j)
            _fields(d, DETAIL, dw, p)
            if isinstance(d, dict):
                if d.get("result-type") not in RESULT_TYPES:
                    p.append("%s: result-type %r" % (dw, d.get("result-type")))
                failed += d.get("failed-session-count", 0)
        s = pol.get("summary", {})
        if (isinstance(s, dict) and "failure-details" in pol and
                s.get("total-failure-session-count") != failed):
            p.append("%s: failures %r but details add up to %d"
                     % (where, s.get("total-failure-session-count"), failed))
    return p


def read_message(raw):
    """The message (email.message.EmailMessage), the report in it (parsed)
    and the attachment's file name; ValueError when the message is not as
    RFC 8460 5.3 says."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg.get_content_type() != "multipart/report":
        raise ValueError("not multipart/report: %s" % msg.get_content_type())
    if msg.get_param("report-type") != "tlsrpt":
        raise ValueError("report-type %r" % msg.get_param("report-type"))
    subject = str(msg["Subject"])
    m = re.match(r"^Report Domain: (\S+) Submitter: (\S+) "
                 r"Report-ID: <([^>]+)>$", subject)
    if m is None:
        raise ValueError("Subject %r" % subject)
    if str(msg["TLS-Report-Domain"]) != m.group(1):
        raise ValueError("TLS-Report-Domain %r" % msg["TLS-Report-Domain"])
    if str(msg["TLS-Report-Submitter"]) != m.group(2):
        raise ValueError("TLS-Report-Submitter %r"
                         % msg["TLS-Report-Submitter"])
    parts = list(msg.iter_parts())
    if len(parts) != 2 or parts[0].get_content_type() != "text/plain":
        raise ValueError("parts: %r" % [x.get_content_type() for x in parts])
    att = parts[1]
    if att.get_content_type() != "application/tlsrpt+gzip":
        raise ValueError("report part %s" % att.get_content_type())
    fname = att.get_filename()
    fm = FILENAME.match(fname or "")
    if fm is None:
        raise ValueError("file name %r" % fname)
    if fm.group(1) != m.group(2) or fm.group(2) != m.group(1):
        raise ValueError("file name %r does not match the Subject" % fname)
    obj = json.loads(gzip.decompress(att.get_content()).decode("utf-8"))
    if obj.get("report-id") != m.group(3):
        raise ValueError("report-id %r, Subject %r" % (obj.get("report-id"),
                                                      m.group(3)))
    return msg, obj, fname
