#include "tools/cli/cli.h"

#include "tools/cli/agent.h"
#include "tools/cli/customer.h"
#include "tools/cli/demo.h"
#include "tools/cli/supervisor.h"

namespace switchboard::cli {

std::string HelpText() {
  return R"(switchboard: the Switchboard desk from a terminal (development tokens from the local key)

customer   (--as=ID, default customer-1)
  open [--channel=chat] [--category=deposit] [--language=en] [--text=...]   open a session; prints its id
  chat SESSION                 interactive: lines you type are sent, the session's events stream in
  say SESSION TEXT             send one message
  show SESSION                 the session's state
  attach SESSION FILE [--type=image/png] [--message=TEXT]   upload a file (by its extension:
                               png jpg jpeg gif webp heic mp4 mov pdf txt log, else --type),
                               then send a message carrying it; the same command again after
                               a failure is a retry, never a second copy
  verify [--method=email_otp] [--session=S] [--code=C]   verify identity; prints a verification token
  callback SESSION --phone=+8613800138000 [--verification_token=T]   request a phone callback
  email SESSION                a chat waiting while the desk is closed continues by email
  rate SESSION [--csat=5 --speed=5 --professionalism=5 --resolution=5 --comment=...]
  complain --text=... [--reason=slow_response] [--session=S]
  changes                      changes of your contacts or authenticator by the support desk
  confirm-change CHANGE [--code=C | --verification_token=T]   apply one now (it was you)
  cancel-change CHANGE         drop one (it was not you)
agent      (--as=ID, default agent-1)
  online [--capacity=chat:2] [--auto_accept]
                               go online and keep heartbeating until Ctrl-C (then offline);
                               skills and the most per channel come from a supervisor's profile
  offline                      go offline
  offers [--accept] [--for=DURATION]   watch offers (and accept each one)
  accept OFFER | decline OFFER
  chat SESSION | say SESSION TEXT
  transfer SESSION (--category=C [--language=L] | --to_agent=ID | --to_bot) [--note=...]
  resolve SESSION [--summary=...]
  attachment get SESSION ATTACHMENT [--out=PATH] [--force] [--url]
                               download a CLEAN file (to its name here unless --out; --force
                               overwrites), checked against its SHA-256; --url prints a signed
                               URL instead, where the server keeps files in an object store
supervisor (--as=ID, default supervisor-1)
  queues                       queue depth, oldest wait, agents per queue
  agents [--status=online]     agents, skills and load
  complaints [--state=open]    complaints
  summary [--since=24h] [--by=agent|category|channel]   ratings and CSAT
  contact CUSTOMER --email=ADDRESS | --sms=+NUMBER      where a customer's codes go: a pending
                               change the customer is told of and may confirm or cancel
  profile AGENT [--categories=deposit,withdrawal] [--languages=en] [--capacity=chat:3]
                               what an agent handles: skills and the most per channel
  hours set SCHEDULE --zone=Z --weekly=mon-fri=09:00-17:00 [--closed=2026-12-25,START/END]
        [--open=START/END] [--applies_to=phone,chat/deposit/zh] [--expected_version=N]
                               hours of operation: closed queues get no offers
  hours show [SCHEDULE]        schedules; one with whether it is open now and its next change
demo [--max_lapse_wait=10s]    play a whole journey: customer, bot, two agents, a drop, re-queue,
                               resolution, rating; prints the timeline and response-time figures
help                           this text

Every command takes: --json (one JSON object per line), --deadline=10s (per call),
--data_dir=data (its development keys are in data/keys) or --key_file=PEM, --as=ID, and
--sessions_address=localhost:7101 --routing_address=localhost:7102 --bot_address=localhost:7103
--presence_address=localhost:7104 --identity_address=localhost:7105 --feedback_address=localhost:7106;
each flag also reads SWITCHBOARD_CLI_<FLAG> then SWITCHBOARD_<FLAG> (e.g. SWITCHBOARD_DATA_DIR).
`switchboard <group> <command> --help` lists a command's flags.
Errors: "error: <CODE>: <message>" on stderr; exit 1 when a call fails, 2 for bad usage.
)";
}

int Run(const std::vector<std::string>& args, Io& io) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? io.err : io.out) << HelpText();
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "customer") return RunCustomer(rest, io);
  if (args[0] == "agent") return RunAgent(rest, io);
  if (args[0] == "supervisor") return RunSupervisor(rest, io);
  if (args[0] == "demo") return RunDemo(rest, io);
  io.err << "error: INVALID_ARGUMENT: unknown command \"" << args[0]
         << "\"; try `switchboard help`\n";
  return kExitUsage;
}

}  // namespace switchboard::cli
