/* cmd_inspect.c -- placeholder until 'attnctl inspect' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_inspect(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl inspect: not available in this build yet\n");
    return 1;
}
