/* cmd.h -- the subcommands of attnctl.  Each takes the arguments after its
 * name (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 the operation failed, 2 bad usage. */
#ifndef TOOLS_CMD_H
#define TOOLS_CMD_H

int cmd_init(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_evalnew(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_history_push(int argc, char **argv);   /* cmd_hpush.c */
int cmd_history_check(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_model_trim(int argc, char **argv);   /* 'model trim', from cmd_model */
int cmd_experiment(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);

#endif
