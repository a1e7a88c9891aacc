/* cmd_gen.c -- placeholder until 'attnctl gen' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_gen(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl gen: not available in this build yet\n");
    return 1;
}
