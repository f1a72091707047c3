#!/usr/bin/python3
"""What a new admin meets first: passwords on a terminal, --help and
--version, `postroom check` against what the daemons refuse, the queue by
the id of "queued as", strict aliases, domains in one form (IDNA2008)."""

import os
import poplib
import pty
import select
import smtplib
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import tap  # noqa: E402

DELIVER = os.path.join(harness.BUILD, "pop3d", "pop3_deliver")


class AdminCase(unittest.TestCase):
    tls = False

    def setUp(self):
        self.inst = harness.Instance(tls=self.tls)

    def tearDown(self):
        self.inst.close()

    def run_cli(self, *args, input=None, **kw):
        return subprocess.run(
            [harness.BIN["cli"], "-c", self.inst.config] + list(args),
            input=input, capture_output=True, text=True,
            env=self.inst.env(), timeout=60, **kw)

    def assertFails(self, r, code, needle):
        self.assertEqual(r.returncode, code, (r.stdout, r.stderr))
        lines = r.stderr.strip().splitlines()
        if code == 1:
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertTrue(lines[0].startswith("postroom: "), r.stderr)
        self.assertIn(needle, r.stderr)

    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
        return r

    def pty_cli(self, *args, answers=()):
        """Runs the CLI on a new pseudo-terminal (its controlling
        terminal); answers each prompt in turn.  Returns (status,
        everything the terminal showed)."""
        argv = [harness.BIN["cli"], "-c", self.inst.config] + list(args)
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(argv[0], argv, self.inst.env())
            finally:
                os._exit(127)
        shown = b""
        pending = list(answers)
        answered = 0
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.5)
                if not r:
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
                # One answer per prompt, once the prompt is shown (the
                # CLI turns echo off before it prints one).
                while pending and shown.count(b"password: ") > answered:
                    os.write(fd, pending.pop(0).encode() + b"\n")
                    answered += 1
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        return os.waitstatus_to_exitcode(status), shown.decode("utf-8",
                                                               "replace")


class PasswordTest(AdminCase):
    def setUp(self):
        super().setUp()
        self.inst.add_domain("example.org")
        self.inst.add_user("a@example.org", "password one")

    def pop3_login(self, password):
        if "pop3d" not in self.inst.procs:
            self.inst.start("pop3d")
        p = poplib.POP3(self.inst.host, self.inst.ports["pop3"], timeout=30)
        try:
            p.user("a@example.org")
            p.pass_(password)
            return True
        except poplib.error_proto:
            return False
        finally:
            try:
                p.quit()
            except Exception:
                p.close()

    def test_passwd_asks_twice_without_echo(self):
        code, shown = self.pty_cli("user", "passwd", "a@example.org",
                                   answers=["password two", "password two"])
        self.assertEqual(code, 0, shown)
        self.assertIn("New password:", shown)
        self.assertIn("Retype password:", shown)
        self.assertNotIn("password two", shown)
        self.assertTrue(self.pop3_login("password two"))
        self.assertFalse(self.pop3_login("password one"))

    def test_passwd_mismatch_on_terminal(self):
        code, shown = self.pty_cli("user", "passwd", "a@example.org",
                                   answers=["password two", "password 2"])
        self.assertEqual(code, 1, shown)
        self.assertIn("do not match", shown)
        self.assertTrue(self.pop3_login("password one"))

    def test_passwd_without_terminal_names_the_flag(self):
        # A new session has no controlling terminal: /dev/tty exists but
        # cannot be opened.
        r = self.run_cli("user", "passwd", "a@example.org",
                         input="password two\n", start_new_session=True)
        self.assertFails(r, 1, "use --password-stdin")
        r = self.run_cli("user", "add", "b@example.org",
                         input="password two\n", start_new_session=True)
        self.assertFails(r, 1, "use --password-stdin")

    def test_passwd_stdin(self):
        self.assertOk(self.run_cli("user", "passwd", "a@example.org",
                                   "--password-stdin",
                                   input="password three\n"))
        self.assertTrue(self.pop3_login("password three"))
        self.assertFails(self.run_cli("user", "passwd", "a@example.org",
                                      "--bogus"), 2, "usage")
        self.assertFails(self.run_cli("user", "passwd", "zz@example.org",
                                      "--password-stdin",
                                      input="password three\n"), 1,
                         "zz@example.org")

    def test_short_passwords_refused(self):
        for verb, addr in (("add", "b@example.org"),
                           ("passwd", "a@example.org")):
            for pw in ("x", "1234567", "\u00e4" * 7):
                with self.subTest(verb=verb, pw=pw):
                    r = self.run_cli("user", verb, addr, "--password-stdin",
                                     input=pw + "\n")
                    self.assertFails(r, 1, "too short (at least 8 "
                                     "characters)")
        self.assertTrue(self.pop3_login("password one"))
        # Characters, not octets: eight of them in 16 octets will do.
        self.assertOk(self.run_cli("user", "add", "b@example.org",
                                   "--password-stdin",
                                   input="\u00e4" * 8 + "\n"))
        self.assertOk(self.run_cli("user", "add", "c@example.org",
                                   "--password-stdin",
                                   input="12345678\n"))


class HelpVersionTest(AdminCase):
    def test_help_and_version_on_every_binary(self):
        for name in ("cli", "smtpd", "pop3d"):
            for flag in ("--help", "-h"):
                with self.subTest(binary=name, flag=flag):
                    r = subprocess.run([harness.BIN[name], flag],
                                       capture_output=True, text=True,
                                       timeout=30)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("usage:", r.stdout)
                    self.assertIn("--version", r.stdout)
            for flag in ("--version", "-V"):
                with self.subTest(binary=name, flag=flag):
                    r = subprocess.run([harness.BIN[name], flag],
                                       capture_output=True, text=True,
                                       timeout=30)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertRegex(r.stdout, r"^postroom\S* \d+\.\d+")

    def test_errors_are_prefixed_postroom_whatever_argv0(self):
        link = os.path.join(self.inst.tmp, "pr")
        os.symlink(harness.BIN["cli"], link)
        for args in (["--bogus"], ["-x"], ["-c"]):
            with self.subTest(args=args):
                r = subprocess.run([link] + args, capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.startswith("postroom: "), r.stderr)
                self.assertNotIn("invalid option", r.stderr)
        r = subprocess.run([link, "-c", self.inst.config, "user", "del",
                            "nobody@nowhere.example"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("postroom: "), r.stderr)
        daemon_link = os.path.join(self.inst.tmp, "d")
        os.symlink(harness.BIN["smtpd"], daemon_link)
        r = subprocess.run([daemon_link, "--bogus"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith("postroom-smtpd: unknown "
                                            "option --bogus"), r.stderr)

    def test_missing_database_said_once(self):
        os.remove(os.path.join(self.inst.data_dir, "mail.db"))
        r = self.run_cli("domain", "list")
        self.assertFails(r, 1, "postroom init")
        self.assertEqual(r.stderr.count("postroom init"), 1, r.stderr)
        for daemon in ("smtpd", "pop3d"):
            r = subprocess.run([harness.BIN[daemon], "-c", self.inst.config],
                               capture_output=True, text=True, timeout=60,
                               env=self.inst.env())
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(r.stderr.count("postroom init"), 1, r.stderr)

    def test_one_message_is_singular(self):
        self.inst.add_domain("example.org")
        self.inst.add_user("a@example.org", "password one")
        msg = os.path.join(self.inst.tmp, "m.eml")
        with open(msg, "wb") as f:
            f.write(b"Subject: one\r\n\r\nbody\r\n")
        subprocess.run([DELIVER, self.inst.data_dir, msg, "a@example.org"],
                       check=True, capture_output=True, timeout=60)
        out = self.assertOk(self.run_cli("user", "list")).stdout
        self.assertIn("\t1 message\t", out)
        subprocess.run([DELIVER, self.inst.data_dir, msg, "a@example.org"],
                       check=True, capture_output=True, timeout=60)
        out = self.assertOk(self.run_cli("user", "list")).stdout
        self.assertIn("\t2 messages\t", out)


class QueueTest(AdminCase):
    MSGID = "0123456789abcdef"

    def queue_one(self):
        """One queue entry, as smtpd leaves a message for a remote
        recipient (the relay is not what this tests)."""
        db = sqlite3.connect(os.path.join(self.inst.data_dir, "mail.db"))
        try:
            now = int(time.time())
            body = b"Subject: x\r\n\r\nx\r\n"
            cur = db.execute(
                "INSERT INTO bodies (msgid, sender, size, created, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.MSGID, "a@example.org", len(body), now, body))
            cur = db.execute(
                "INSERT INTO queue (msgid, body_id, sender, created,"
                " next_attempt) VALUES (?, ?, ?, ?, ?)",
                (self.MSGID, cur.lastrowid, "a@example.org", now, now + 600))
            db.execute("INSERT INTO queue_rcpt (queue_id, address)"
                       " VALUES (?, ?)", (cur.lastrowid, "r@far.example"))
            db.commit()
        finally:
            db.close()

    def test_queue_by_message_id(self):
        self.queue_one()
        out = self.assertOk(self.run_cli("queue", "list")).stdout
        first = out.splitlines()[0]
        self.assertTrue(first.startswith(self.MSGID + " "), out)
        self.assertRegex(first, r"created=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        self.assertRegex(first, r"next=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        self.assertIn("to=<r@far.example>", out)
        self.assertFails(self.run_cli("queue", "del", "1"), 1,
                         "bad queue id '1'")
        self.assertFails(self.run_cli("queue", "del", "ffffffffffffffff"), 1,
                         "no queue entry ffffffffffffffff")
        self.assertOk(self.run_cli("queue", "del", self.MSGID.upper()))
        self.assertIn("queue is empty",
                      self.assertOk(self.run_cli("queue", "list")).stdout)
        self.assertFails(self.run_cli("queue", "del", self.MSGID), 1,
                         "no queue entry " + self.MSGID)


class AliasTest(AdminCase):
    def setUp(self):
        super().setUp()
        self.inst.add_domain("example.org")
        for u in ("a", "b", "c"):
            self.inst.add_user(u + "@example.org", u + "-password")

    def aliases(self):
        out = self.assertOk(self.run_cli("alias", "list")).stdout
        return dict(line.split("\t") for line in out.splitlines())

    def test_existing_alias_needs_append(self):
        self.assertOk(self.run_cli("alias", "add", "team@example.org",
                                   "a@example.org"))
        self.assertFails(self.run_cli("alias", "add", "team@example.org",
                                      "b@example.org"), 1, "--append")
        self.assertEqual(self.aliases()["team@example.org"], "a@example.org")
        self.assertOk(self.run_cli("alias", "add", "team@example.org",
                                   "b@example.org", "--append"))
        self.assertEqual(self.aliases()["team@example.org"],
                         "a@example.org,b@example.org")

    def test_unknown_local_target_needs_force(self):
        self.assertOk(self.run_cli("alias", "add", "@example.org",
                                   "a@example.org"))
        r = self.run_cli("alias", "add", "x@example.org",
                         "nobody@example.org")
        self.assertFails(r, 1, "no such user or alias: nobody@example.org")
        self.assertIn("--force", r.stderr)
        self.assertNotIn("x@example.org", self.aliases())
        r = self.assertOk(self.run_cli("alias", "add", "x@example.org",
                                       "nobody@example.org", "--force"))
        self.assertIn("warning: nobody@example.org", r.stderr)
        self.assertEqual(self.aliases()["x@example.org"],
                         "nobody@example.org")

    def test_user_del_cleans_aliases(self):
        self.assertOk(self.run_cli("alias", "add", "team@example.org",
                                   "a@example.org,b@example.org"))
        self.assertOk(self.run_cli("alias", "add", "solo@example.org",
                                   "b+lists@example.org"))
        self.assertOk(self.run_cli("alias", "add", "far@example.org",
                                   "b@example.org,x@elsewhere.example"))
        r = self.assertOk(self.run_cli("user", "del", "b@example.org"))
        self.assertIn("alias solo@example.org deleted", r.stdout)
        self.assertIn("alias team@example.org: user removed", r.stdout)
        self.assertIn("alias far@example.org: user removed", r.stdout)
        self.assertEqual(self.aliases(),
                         {"team@example.org": "a@example.org",
                          "far@example.org": "x@elsewhere.example"})

    def test_domain_del_counts_aliases(self):
        self.assertOk(self.run_cli("alias", "add", "team@example.org",
                                   "a@example.org,b@example.org,"
                                   "c@example.org"))
        for u in ("a", "b", "c"):
            self.assertOk(self.run_cli("user", "del", u + "@example.org"))
        self.inst.add_user("d@example.org", "d-password")
        self.assertOk(self.run_cli("alias", "add", "t2@example.org",
                                   "d@example.org,x@far.example,"
                                   "y@far.example"))
        self.assertFails(self.run_cli("domain", "del", "example.org"), 1,
                         "1 user and 1 alias")


class DomainTest(AdminCase):
    U = "ex\u00e4mple.org"
    A = "xn--exmple-cua.org"

    def test_ip_literals_refused(self):
        for d in ("192.168.1.1", "[192.168.1.1]", "2001:db8::1", "10.0.0"):
            with self.subTest(domain=d):
                r = self.run_cli("domain", "add", d)
                self.assertEqual(r.returncode, 1, r.stderr)
        self.assertFails(self.run_cli("domain", "add", "192.168.1.1"), 1,
                         "is an IP address, not a domain name")
        self.assertEqual(self.run_cli("domain", "list").stdout, "")

    def test_u_label_and_a_label_are_one_domain(self):
        self.assertOk(self.run_cli("domain", "add", self.U))
        self.assertFails(self.run_cli("domain", "add", self.A), 1, self.A)
        self.assertFails(self.run_cli("domain", "add", "EX\u00c4MPLE.ORG"),
                         1, self.A)
        self.assertEqual(self.run_cli("domain", "list").stdout.split(),
                         [self.A])
        self.assertOk(self.run_cli("user", "add", "ann@" + self.U,
                                   "--password-stdin",
                                   input="ann-password\n"))
        self.assertFails(self.run_cli("user", "add", "ann@" + self.A,
                                      "--password-stdin",
                                      input="ann-password\n"), 1, "ann@")
        out = self.run_cli("user", "list").stdout
        self.assertTrue(out.startswith("ann@%s\t" % self.A), out)
        self.assertOk(self.run_cli("alias", "add", "team@" + self.A,
                                   "ann@" + self.U))
        self.assertEqual(self.run_cli("alias", "list").stdout,
                         "team@%s\tann@%s\n" % (self.A, self.A))
        out = self.assertOk(self.run_cli("dns", self.U)).stdout
        self.assertIn("%s. IN MX 10" % self.A, out)
        # The DKIM key is the A-label domain's: d= is what DNS holds.
        out = self.assertOk(self.run_cli("dkim", "keygen", self.U)).stdout
        self.assertIn("._domainkey.%s." % self.A, out)
        self.assertTrue(os.path.isdir(os.path.join(
            self.inst.data_dir, "dkim", self.A)))

        # RCPT in U-labels (SMTPUTF8, RFC 6531) and in A-labels reach her.
        self.inst.start("smtpd")
        s = smtplib.SMTP(self.inst.host, self.inst.ports["smtp"], timeout=30)
        try:
            s.ehlo("client.example")
            for rcpt in ("ann@" + self.U, "team@" + self.A):
                self.assertEqual(s.mail("x@sender.example",
                                        ["SMTPUTF8"])[0], 250)
                self.assertEqual(s.rcpt(rcpt)[0], 250, rcpt)
                self.assertEqual(s.data(b"Subject: hi\r\n\r\nhi\r\n")[0],
                                 250)
        finally:
            s.quit()
        out = self.assertOk(self.run_cli("mailbox", "list",
                                         "ann@" + self.U)).stdout
        self.assertEqual(len(out.splitlines()), 2, out)


    def test_check_warns_about_a_domain_stored_as_typed(self):
        """A U-label domain stored by an older version is found by no
        lookup any more (they normalise): check says what to do."""
        db = sqlite3.connect(os.path.join(self.inst.data_dir, "mail.db"))
        try:
            db.execute("INSERT INTO domains (name, created) VALUES (?, 0)",
                       (self.U,))
            db.commit()
        finally:
            db.close()
        r = self.assertOk(self.run_cli("check"))
        self.assertIn("warning: domain %s is stored as typed, not as %s"
                      % (self.U, self.A), r.stdout)


class CheckTest(AdminCase):
    tls = True

    def cert(self, name, cn="mx.example.test", days=365, key=None):
        key = key or os.path.join(self.inst.tmp, name + ".key")
        csr = os.path.join(self.inst.tmp, name + ".csr")
        crt = os.path.join(self.inst.tmp, name + ".pem")
        if not os.path.exists(key):
            subprocess.run(["openssl", "genrsa", "-out", key, "2048"],
                           check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-key", key, "-out", csr,
                        "-subj", "/CN=" + cn], check=True,
                       capture_output=True)
        ext = os.path.join(self.inst.tmp, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\n" % cn)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-signkey",
                        key, "-days", str(days), "-out", crt, "-extfile",
                        ext], check=True, capture_output=True)
        return crt, key

    def use(self, cert, key, **server):
        self.inst.extra["tls"] = {"cert": cert, "key": key}
        self.inst.extra.setdefault("server", {}).update(server)
        self.inst.write_config()

    def check(self):
        return self.run_cli("check")

    def test_good_pair(self):
        self.use(*self.cert("good"), postmaster="")
        r = self.assertOk(self.check())
        self.assertIn("tls %s: ok" % self.inst.extra["tls"]["cert"],
                      r.stdout)
        self.assertNotIn("warning: [tls]", r.stdout)
        self.assertNotIn("warning: [server] hostname", r.stdout)
        self.assertIn("warning: no [server] postmaster", r.stdout)

    def test_refused_pairs_fail(self):
        good, key = self.cert("good")
        other, okey = self.cert("other")
        junk = os.path.join(self.inst.tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        expired, ekey = self.cert("expired", days=-1)
        for cert, k, needle in ((junk, key, "[tls] certificate " + junk),
                                (good, okey, "[tls] private key " + okey),
                                (expired, ekey, "expired on")):
            with self.subTest(cert=cert, key=k):
                self.use(cert, k)
                self.assertFails(self.check(), 1, needle)
                if needle != "expired on":
                    # The daemon refuses to start on the same pair.
                    r = subprocess.run(
                        [harness.BIN["smtpd"], "-c", self.inst.config],
                        capture_output=True, text=True, timeout=60,
                        env=self.inst.env())
                    self.assertNotEqual(r.returncode, 0)

    def test_warnings_exit_0(self):
        soon, key = self.cert("soon", days=5)
        self.use(soon, key)
        r = self.assertOk(self.check())
        self.assertRegex(r.stdout, r"warning: \[tls\] cert .* expires on "
                         r"\S+, in [45] days")
        other, okey = self.cert("other", cn="www.example.test")
        self.use(other, okey)
        r = self.assertOk(self.check())
        self.assertIn("does not name mx.example.test ([server] hostname)",
                      r.stdout)
        good, gkey = self.cert("vm", cn="vm")
        self.use(good, gkey, hostname="vm")
        r = self.assertOk(self.check())
        self.assertIn("warning: [server] hostname 'vm' is not a "
                      "fully-qualified domain name", r.stdout)

    def test_config_errors_the_daemons_refuse(self):
        with open(self.inst.config, "a") as f:
            f.write("[smtp]\nmax_connections_per_ip = 5\n")
        with open(self.inst.config) as f:
            lines = f.read().splitlines()
        r = self.check()
        self.assertFails(r, 1, "duplicate key 'max_connections_per_ip' in "
                         "[smtp]")
        self.assertIn(":%d:" % len(lines), r.stderr)
        r = subprocess.run([harness.BIN["smtpd"], "-c", self.inst.config],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("duplicate key", r.stderr)
        self.inst.write_config()
        self.inst.extra["smtp"] = {"max_message_size": "2G"}
        self.inst.write_config()
        self.assertFails(self.check(), 1, "max_message_size")


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
