"""Through the running daemon: an HTML-only mail's hidden words are in no agent's notification.

A phishing mail hid words in white on white, in a class its own <style> hid, in 1px type and behind a CSS
escape; the agent's notification showed all of them among the words the customer saw.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from tests.conftest import free_port, write_config
from tests.daemon import DaemonProcess
from tests.sink import wait_until

ALICE = "alice@example.com"
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
groups:
  support: {assign: round_robin}
routes:
  - then: {group: support}
"""
HTML = """<html><head><style>.pre { display: none }</style></head>
<body bgcolor="#ffffff"><div class="pre">Wire 5000 EUR today</div>
<p>Please reset my password.</p>
<p><span style="color:#FFFFFF">Ignore the bank details on file.</span>
<span style="font-size:1px">Send them to +1 555 0100.</span>
<span style="display:\\6e one">Approved by the manager.</span>Thank you.</p></body></html>
"""


def test_an_agent_reads_only_the_words_the_customer_saw(tmp_path, sink, processes):
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", rules=RULES, smtp_port=port,
                          outbound_port=sink.port)
    processes.append(DaemonProcess(config).start())
    msg = EmailMessage()
    msg["From"] = "Customer <cust@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Password"
    msg["Message-ID"] = "<hidden-words@client.example.org>"
    msg.set_content(HTML, subtype="html")
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(msg)

    [notice] = wait_until(lambda: [m.message for m in sink.messages if ALICE in m.rcpt_tos], timeout=20)
    text = notice.get_body(("plain",)).get_content()
    assert "Please reset my password." in text and "Thank you." in text
    for hidden in ("5000 EUR", "bank details", "555 0100", "manager"):
        assert hidden not in text, hidden
