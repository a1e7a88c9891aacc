/* attnd -- the ranking daemon's command line.
 *
 * Configuration is layered: built-in defaults, then --config FILE, then
 * flags, so that a flag always wins and `attnd --print-config` shows what
 * will run.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "daemon/config.h"
#include "daemon/experiment.h"
#include "daemon/server.h"
#include "daemon/state.h"
#include "util/pid.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: attnd [--db PATH] [--bind ENDPOINT] [--metrics HOST:PORT] [--config FILE]\n"
            "             [--workers N] [--set section.key=value]... [--log-level LEVEL]\n"
            "             [--print-config]\n"
            "\n"
            "Ranks candidate items for a user with multi-head target attention and\n"
            "answers over ZeroMQ (docs/PROTOCOL.md).  Every configuration key is listed,\n"
            "with its default, by --print-config and in conf/attnd.conf.\n"
            "\n"
            "  --db PATH          database (store.db; default attnd.db)\n"
            "  --bind ENDPOINT    ROUTER endpoint (server.bind; default tcp://127.0.0.1:5555)\n"
            "  --metrics ADDR     HTTP listener for /metrics, /healthz, /readyz (metrics.bind;\n"
            "                     default 127.0.0.1:9464; '' = none)\n"
            "  --config FILE      read an INI configuration file first\n"
            "  --workers N        scoring threads (server.workers; 0 = one per core)\n"
            "  --set KEY=VALUE    any configuration key, e.g. --set limits.max_k=100\n"
            "  --log-level LEVEL  debug | info | warn | error\n"
            "  --print-config     print the effective configuration and exit\n"
            "  --version          print the version and exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT finish in-flight requests and exit 0; SIGHUP reloads.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},      {"bind", required_argument, 0, 'b'},
        {"metrics", required_argument, 0, 'm'},
        {"config", required_argument, 0, 'c'},  {"workers", required_argument, 0, 'w'},
        {"set", required_argument, 0, 's'},     {"log-level", required_argument, 0, 'l'},
        {"print-config", no_argument, 0, 'p'},  {"version", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    srv_config cfg;
    char why[512];
    if (util_pid_cache_init() != 0) {
        fprintf(stderr, "attnd: cannot register a fork handler\n");
        return 1;
    }
    if (cfg_defaults_checked(&cfg, why, sizeof why) != 0) {
        fprintf(stderr, "attnd: %s\n", why);
        return 2;
    }
    /* First pass: only --config, so that flags apply over the file. */
    for (int i = 1; i < argc; i++) {
        const char *file = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
        if (file && cfg_load_file(&cfg, file, why, sizeof why) != 0) {
            fprintf(stderr, "attnd: %s\n", why);
            return 2;
        }
    }
    int print = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *key = NULL;
        char buf[1200];
        const char *value = optarg;
        switch (c) {
        case 'd': key = "store.db"; break;
        case 'b': key = "server.bind"; break;
        case 'm': key = "metrics.bind"; break;
        case 'w': key = "server.workers"; break;
        case 'l': key = "server.log_level"; break;
        case 'c': continue;
        case 'p': print = 1; continue;
        case 'v': printf("attnd %s\n", SRV_VERSION); return 0;
        case 'h': s_usage(stdout); return 0;
        case 's': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof buf) {
                fprintf(stderr, "attnd: --set expects section.key=value, got '%s'\n", optarg);
                return 2;
            }
            snprintf(buf, sizeof buf, "%.*s", (int)(eq - optarg), optarg);
            key = buf;
            value = eq + 1;
            break;
        }
        default: s_usage(stderr); return 2;
        }
        if (cfg_set(&cfg, key, value, why, sizeof why) != 0) {
            fprintf(stderr, "attnd: %s\n", why);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "attnd: unexpected argument '%s'\n", argv[optind]);
        s_usage(stderr);
        return 2;
    }
    srv_experiment exp;
    srv_precisions precisions;
    int64_t serve[SRV_MODELS_MAX];
    int n_serve;
    if (cfg_validate(&cfg, why, sizeof why) != 0 ||
        srv_experiment_parse(cfg.exp_arms, cfg.exp_salt, &exp, why, sizeof why) != 0 ||
        srv_models_parse(cfg.models_serve, serve, &n_serve, SRV_MODELS_MAX - 1, why,
                         sizeof why) != 0 ||
        srv_precisions_parse(cfg.models_precision, &precisions, why, sizeof why) != 0) {
        fprintf(stderr, "attnd: %s\n", why);
        return 2;
    }
    if (print) {
        cfg_print(&cfg, stdout);
        return 0;
    }
    /* For the whole process, before any table is built ("auto" included). */
    const char *kernel = cfg_enum_name("model.kernel", cfg.kernel);
    if (attn_kernel_select(kernel) != ATTN_OK) {
        fprintf(stderr, "attnd: model.kernel = %s: this CPU does not run that instruction "
                        "set (set auto, or one of generic, avx2, avx512, avx512bf16 it has)\n",
                kernel);
        return 2;
    }
    return srv_server_run(&cfg);
}
