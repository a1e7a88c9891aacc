/* cmd_embed.c -- placeholder until 'attnctl embed' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_embed(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl embed: not available in this build yet\n");
    return 1;
}
