/* cmd_init.c -- placeholder until 'attnctl init' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_init(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl init: not available in this build yet\n");
    return 1;
}
