/* attnctl -- offline administration of an attnd database. */
#include <stdio.h>
#include <string.h>

#include "tools/cmd.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} s_commands[] = {
    {"init", cmd_init, "init DB --dim D            create an empty database"},
    {"gen", cmd_gen, "gen DB [--items N --users N --dim D --seed S --events-per-user M --force]"},
    {"import", cmd_import, "import items|events|movielens DB FILE|DIR [options]"},
    {"embed", cmd_embed, "embed DB [--refit]          text embeddings; new items fold into the basis"},
    {"train", cmd_train, "train DB [options]           learn a model version"},
    {"eval", cmd_eval, "eval DB [--model V] [--json]  ranking quality beside baselines"},
    {"eval-new", cmd_evalnew, "eval-new DB --newest F       quality on items added after training"},
    {"inspect", cmd_inspect, "inspect DB                  what a database holds"},
    {"history", cmd_history, "history DB USER [--limit N] a user's newest events\n"
                             "  attnctl history push|check DB redis://HOST:PORT[,...]  histories "
                             "to Redis, compared"},
    {"model", cmd_model, "model list|activate|trim DB [V]  model versions"},
    {"experiment", cmd_experiment, "experiment report DB [--key FILE]  how each arm did"},
    {"keygen", cmd_keygen, "keygen NAME | --mask FILE   a CURVE key pair, or a user-id mask key"},
    {"snapshot", cmd_snapshot, "snapshot DB OUT             what replicas serve, one file"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: attnctl COMMAND ...\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  attnctl %s\n", s_commands[i].usage);
    fprintf(out, "Run 'attnctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        s_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(argv[1], s_commands[i].name))
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "attnctl: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
