/* cmd_eval.c -- placeholder until 'attnctl eval' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_eval(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl eval: not available in this build yet\n");
    return 1;
}
